"""Figures (matplotlib, Agg): rank@1 by stop point, per-seed points, differences from baseline, lr × LoRA rank.

Every figure carries the corpus size, the query count and the seed count in its subtitle: rank@1 depends strongly
on corpus size, so a bare number would mislead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from apex.report.baseline import is_ignored
from apex.report.collect import STOP
from apex.report.config import LORA_R_PARAM, LR_PARAM

if TYPE_CHECKING:
    from apex.report.build import ReportData

log = logging.getLogger("apex.report")
_DPI = 120


def _subtitle(data: ReportData) -> str:
    rank = data.cells[data.cells["metric"] == "rank_at_1"]
    corpus = rank["corpus_size"].min()
    queries = rank["n_queries"].min()
    corpus_text = f"{int(corpus):,}" if np.isfinite(corpus) else "?"
    query_text = f"{int(queries):,}" if np.isfinite(queries) else "?"
    return f"corpus {corpus_text} docs · {query_text} test queries · up to {int(rank['n_seeds'].max())} seeds per cell"


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _jitter(n: int, width: float) -> np.ndarray:
    # Deterministic spread of per-seed points so they do not overlap the mean marker.
    return np.linspace(-width, width, n) if n > 1 else np.zeros(1)


def rank_by_stop(data: ReportData, path: Path) -> Path:
    """Mean rank@1 against stop point per cell, with the interval as a band and each seed as a point."""
    rank = data.cells[data.cells["metric"] == "rank_at_1"]
    fig, ax = plt.subplots(figsize=(8, 5))
    span = max(float(rank[STOP].max() - rank[STOP].min()), 1.0)
    for i, (_, group) in enumerate(rank.groupby("cell", sort=True)):
        group = group.sort_values(STOP)
        color = f"C{i % 10}"
        x = group[STOP].to_numpy()
        ax.plot(x, 100 * group["mean"], marker="o", color=color, label=group["cell_label"].iloc[0])
        if group["ci_low"].notna().any():
            ax.fill_between(x, 100 * group["ci_low"], 100 * group["ci_high"], color=color, alpha=0.15, linewidth=0)
        for stop, values in zip(x, group["values"], strict=True):
            offsets = _jitter(len(values), 0.012 * span)
            ax.scatter(stop + offsets, 100 * np.asarray(values), color=color, s=10, alpha=0.6, zorder=3)
    ax.set_xlabel("stop point (fraction of the training budget; 0 = zero-shot)")
    ax.set_ylabel("rank@1 (%)")
    ax.set_title("rank@1 by stop point: mean, 95% interval band, seeds as points\n" + _subtitle(data), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def seeds_at_best(data: ReportData, path: Path) -> Path:
    """Each cell at its best stop point: mean with interval, and every seed's value beside it."""
    rank = data.cells[data.cells["metric"] == "rank_at_1"].merge(data.best[["cell", STOP]], on=["cell", STOP])
    rank = rank.sort_values("cell_label").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rank) + 2), 5))
    for i, row in rank.iterrows():
        mean = 100 * row["mean"]
        if np.isfinite(row["ci_low"]):
            err = [[mean - 100 * row["ci_low"]], [100 * row["ci_high"] - mean]]
            ax.errorbar(i - 0.12, mean, yerr=err, fmt="o", color="black", capsize=4)
        else:
            ax.plot(i - 0.12, mean, "o", color="black")
        values = 100 * np.asarray(row["values"])
        ax.scatter(i + 0.12 + _jitter(values.size, 0.06), values, color="C0", s=18, alpha=0.8)
    ax.set_xticks(range(len(rank)))
    ax.set_xticklabels(
        [f"{lbl}\n(stop {s:g})" for lbl, s in zip(rank["cell_label"], rank[STOP], strict=True)], fontsize=7
    )
    ax.set_ylabel("rank@1 (%)")
    ax.set_title(
        "rank@1 at each cell's best stop point: mean ± interval (black), seeds (blue)\n" + _subtitle(data), fontsize=10
    )
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def diff_by_stop(data: ReportData, path: Path) -> Path:
    """rank@1 difference from the baseline against stop point, its unadjusted interval, ± MDE at the primary stop."""
    comp = data.comparisons
    labels = data.meta["labels"]
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn_mde = False
    for i, (cell, group) in enumerate(comp.groupby("cell", sort=True)):
        group = group.sort_values(STOP)
        color = f"C{i % 10}"
        x = group[STOP].to_numpy()
        ax.plot(x, 100 * group["diff"], marker="o", color=color, label=f"{labels.get(cell, cell)}")
        if group["ci_low"].notna().any():
            ax.fill_between(x, 100 * group["ci_low"], 100 * group["ci_high"], color=color, alpha=0.15, linewidth=0)
        primary = group[(group["role"] == "primary") & group["mde"].notna()]
        for row in primary.to_dict(orient="records"):
            bar = ax.errorbar(row[STOP], 0.0, yerr=100 * row["mde"], fmt="none", color=color, capsize=6)
            bar[2][0].set_linestyle(":")
            drawn_mde = True
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("stop point (fraction of the training budget; 0 = zero-shot)")
    ax.set_ylabel("Δ rank@1 vs baseline (points)")
    title = "difference from baseline: unadjusted interval band (seeds × queries)\n"
    title += "bar around 0 at the primary stop: ± minimum detectable effect\n" if drawn_mde else ""
    ax.set_title(title + _subtitle(data), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _group_title(label: str) -> str:
    """A cell label without its lr and LoRA-rank overrides: what the cells of one heatmap share."""
    keep = [t for t in label.split() if t.lstrip("+~").split("=", 1)[0] not in (LR_PARAM, LORA_R_PARAM)]
    return " ".join(keep) or "all cells"


def heatmap_groups(data: ReportData) -> list[tuple[str, pd.DataFrame]]:
    """Cells grouped by every non-ignored param except lr and LoRA rank; groups with a grid worth drawing."""
    rank = data.cells[data.cells["metric"] == "rank_at_1"].merge(data.best[["cell", STOP]], on=["cell", STOP])
    rows = []
    for row in rank.to_dict(orient="records"):
        params = data.params[row["cell"]]
        rest = tuple(
            sorted(
                (k, v)
                for k, v in params.items()
                if k not in (LR_PARAM, LORA_R_PARAM) and not is_ignored(k, data.config.ignore_params)
            )
        )
        rows.append({"rest": rest, "lr": params.get(LR_PARAM, "?"), "r": params.get(LORA_R_PARAM, "?"), **row})
    frame = pd.DataFrame(rows)
    groups = []
    for _, group in frame.groupby("rest", sort=False) if len(frame) else []:
        if group["lr"].nunique() > 1 or group["r"].nunique() > 1:
            groups.append((_group_title(str(group["cell_label"].iloc[0])), group))
    return groups


def heatmap(data: ReportData, path: Path) -> Path | None:
    """Mean rank@1 over lr × LoRA rank at the best stop point; None (and a note) if there is no grid."""
    groups = heatmap_groups(data)
    if not groups:
        data.notes.append("heatmap skipped: no configuration varies training.lr or training.lora.r")
        return None
    groups = groups[:6]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, (title, group) in zip(axes[0], groups, strict=True):
        lrs = sorted(group["lr"].unique(), key=lambda v: (_as_number(v), v))
        ranks = sorted(group["r"].unique(), key=lambda v: (_as_number(v), v))
        grid = np.full((len(ranks), len(lrs)), np.nan)
        stops = np.full(grid.shape, np.nan)
        for row in group.to_dict(orient="records"):
            grid[ranks.index(row["r"]), lrs.index(row["lr"])] = 100 * row["mean"]
            stops[ranks.index(row["r"]), lrs.index(row["lr"])] = row[STOP]
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        middle = np.nanmean([np.nanmin(grid), np.nanmax(grid)])
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                # Dark text on the bright (high) end of viridis, white on the dark end.
                color = "black" if value > middle else "white"
                text = f"{value:.1f}\n(stop {stops[i, j]:g})"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
        ax.set_xticks(range(len(lrs)), lrs, fontsize=8)
        ax.set_yticks(range(len(ranks)), ranks, fontsize=8)
        ax.set_xlabel(LR_PARAM)
        ax.set_ylabel(LORA_R_PARAM)
        ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, label="rank@1 (%)")
    fig.suptitle("mean rank@1 at the best stop point\n" + _subtitle(data), fontsize=10)
    return _save(fig, path)


def write_figures(data: ReportData, out_dir: Path) -> list[Path]:
    """Every figure into `out_dir/figures/`; returns the written paths."""
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        rank_by_stop(data, folder / "rank_at_1_by_stop.png"),
        seeds_at_best(data, folder / "rank_at_1_seeds.png"),
    ]
    if not data.comparisons.empty:
        written.append(diff_by_stop(data, folder / "diff_vs_baseline.png"))
    grid = heatmap(data, folder / "heatmap_lr_lora_r.png")
    if grid is not None:
        written.append(grid)
    return written
