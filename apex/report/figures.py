"""Figures (matplotlib, Agg), all on the primary metric: the paired difference from the baseline by stop point (the
main picture), each seed's two arms joined, the metric by stop point, lr × LoRA rank. One colour per configuration
throughout; the chosen stop is marked.

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
from apex.report.tables import METRIC_NAMES

if TYPE_CHECKING:
    from apex.report.build import ReportData

log = logging.getLogger("apex.report")
_DPI = 120


def _subtitle(data: ReportData) -> str:
    rank = data.cells[data.cells["metric"] == data.meta["metric"]]
    corpus = rank["corpus_size"].min()
    queries = rank["n_queries"].min()
    corpus_text = f"{int(corpus):,}" if np.isfinite(corpus) else "?"
    query_text = f"{int(queries):,}" if np.isfinite(queries) else "?"
    return f"corpus {corpus_text} docs · {query_text} test queries · up to {int(rank['n_seeds'].max())} seeds per arm"


def arm_colors(data: ReportData) -> dict[str, str]:
    """One colour per configuration, the same in every figure (matplotlib's tab10 cycle, by sorted cell)."""
    return {cell: f"C{i % 10}" for i, cell in enumerate(sorted(data.cell_info["cell"]))}


def _name(data: ReportData) -> str:
    return METRIC_NAMES[str(data.meta["metric"])]


def _scale(data: ReportData) -> float:
    return 100.0  # percentages for rates, score × 100 for nDCG/MRR: the points every table uses


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _jitter(n: int, width: float) -> np.ndarray:
    # Deterministic spread of per-seed points so they do not overlap the mean marker.
    return np.linspace(-width, width, n) if n > 1 else np.zeros(1)


def metric_by_stop(data: ReportData, path: Path) -> Path:
    """Mean of the primary metric against stop point per arm, each seed as a labelled point (no bands)."""
    metric, colors = str(data.meta["metric"]), arm_colors(data)
    rank = data.cells[data.cells["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, 5))
    span = max(float(rank[STOP].max() - rank[STOP].min()), 1.0)
    for cell, group in rank.groupby("cell", sort=True):
        group = group.sort_values(STOP)
        color = colors.get(cell, "C0")
        x = group[STOP].to_numpy()
        ax.plot(x, 100 * group["mean"], marker="o", color=color, label=group["cell_label"].iloc[0])
        for stop, values in zip(x, group["values"], strict=True):
            offsets = _jitter(len(values), 0.012 * span)
            ax.scatter(stop + offsets, 100 * np.asarray(values), color=color, s=10, alpha=0.6, zorder=3)
    _mark_chosen(ax, data)
    ax.set_xlabel("stop point (fraction of the training budget; 0 = zero-shot base model)")
    ax.set_ylabel(f"{_name(data)} (× 100)")
    ax.set_title(
        f"{_name(data)} by stop point: mean of seeds (line), each seed (dots)\n" + _subtitle(data), fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _mark_chosen(ax: plt.Axes, data: ReportData) -> None:
    """A dashed vertical line at each compared configuration's chosen stop, labelled (and 'tie' when it was one)."""
    compared = data.best[data.best["compared"].astype(bool)]
    for stop, group in compared.groupby(STOP):
        tie = " (tie: earliest)" if group["tied"].astype(bool).any() else ""
        ax.axvline(stop, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            f"chosen stop{tie}",
            (stop, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            ha="right",
            va="top",
            rotation=90,
            color="grey",
        )


def seeds_paired(data: ReportData, path: Path) -> Path:
    """Each comparison at its chosen stop: every seed's configuration and baseline joined by a line, seed labelled."""
    metric, colors, labels = str(data.meta["metric"]), arm_colors(data), data.meta["labels"]
    primary = data.comparisons[data.comparisons["role"] == "primary"] if len(data.comparisons) else data.comparisons
    seeds = data.seeds
    fig, ax = plt.subplots(figsize=(max(6, 2.5 * max(len(primary), 1) + 2), 5))
    ticks, names = [], []
    for i, row in enumerate(primary.to_dict(orient="records")):
        left, right = 2 * i, 2 * i + 1
        for position, cell in ((left, row["baseline"]), (right, row["cell"])):
            ticks.append(position)
            names.append(f"{labels.get(cell, cell)}")
        stops = dict(s.split(":") for s in row["seed_stops"].split()) if row["seed_stops"] else {}
        for seed in sorted(set(seeds.loc[seeds["cell"] == row["cell"], "seed"])):
            stop = float(stops.get(str(seed), row[STOP]))
            at = seeds[(seeds["seed"] == seed) & np.isclose(seeds[STOP], stop)]
            base = at.loc[at["cell"] == row["baseline"], metric]
            mine = at.loc[at["cell"] == row["cell"], metric]
            if base.empty or mine.empty:
                continue
            y = (100 * float(base.iloc[0]), 100 * float(mine.iloc[0]))
            ax.plot([left, right], y, color="grey", linewidth=0.8, zorder=1)
            ax.scatter([left], [y[0]], color=colors.get(row["baseline"], "C1"), s=30, zorder=2)
            ax.scatter([right], [y[1]], color=colors.get(row["cell"], "C0"), s=30, zorder=2)
            ax.annotate(f"seed {seed}", (right, y[1]), xytext=(6, 0), textcoords="offset points", fontsize=7)
    ax.set_xticks(ticks, names, fontsize=7)
    ax.set_xlim(-0.6, max(ticks, default=1) + 0.9)
    ax.set_ylabel(f"{_name(data)} (× 100)")
    ax.set_title(
        f"{_name(data)} per seed at the chosen stop; a line joins one seed's two models\n" + _subtitle(data),
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def diff_by_stop(data: ReportData, path: Path) -> Path:
    """The main picture: paired difference from the baseline by stop point with its interval; chosen stop marked."""
    comp, colors, labels = data.comparisons, arm_colors(data), data.meta["labels"]
    fig, ax = plt.subplots(figsize=(8, 5))
    cells = sorted(comp["cell"].unique())
    for i, cell in enumerate(cells):
        group = comp[comp["cell"] == cell].sort_values(STOP)
        color = colors.get(cell, "C0")
        shift = 0.012 * (i - (len(cells) - 1) / 2)  # side by side, never overlapping
        x = group[STOP].to_numpy() + shift
        low = (group["diff"] - group["ci_low"]).to_numpy()
        high = (group["ci_high"] - group["diff"]).to_numpy()
        ax.errorbar(
            x,
            100 * group["diff"],
            yerr=100 * np.vstack([low, high]),
            fmt="-o",
            color=color,
            capsize=4,
            label=f"{labels.get(cell, cell)} − {labels.get(group['baseline'].iloc[0], '')}",
        )
        chosen = group[group["role"] == "primary"]
        ax.scatter(
            chosen[STOP] + shift,
            100 * chosen["diff"],
            marker="*",
            s=220,
            color=color,
            zorder=4,
            edgecolor="black",
            label="chosen stop (the verdict's row)" if i == 0 else None,
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    _mark_chosen(ax, data)
    ax.set_xlabel("stop point (fraction of the training budget; 0 = zero-shot, the same model in both arms)")
    ax.set_ylabel(f"Δ {_name(data)} vs baseline (points)")
    ax.set_title(
        f"paired difference in {_name(data)}, configuration − baseline, with its unadjusted"
        f" {100 * data.config.confidence:.0f}% interval\n(seeds × queries crossed; ★ = chosen stop) · "
        + _subtitle(data),
        fontsize=9,
    )
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
    rank = data.cells[data.cells["metric"] == data.meta["metric"]].merge(data.best[["cell", STOP]], on=["cell", STOP])
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
        fig.colorbar(image, ax=ax, label=f"{_name(data)} (× 100)")
    fig.suptitle(f"mean {_name(data)} at each configuration's stop point\n" + _subtitle(data), fontsize=10)
    return _save(fig, path)


def write_figures(data: ReportData, out_dir: Path) -> list[Path]:
    """Every figure into `out_dir/figures/`; returns the written paths."""
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    metric = str(data.meta["metric"])
    written = []
    if not data.comparisons.empty:  # the main picture first
        written.append(diff_by_stop(data, folder / f"{metric}_diff_by_stop.png"))
        written.append(seeds_paired(data, folder / f"{metric}_seeds_paired.png"))
    written.append(metric_by_stop(data, folder / f"{metric}_by_stop.png"))
    grid = heatmap(data, folder / "heatmap_lr_lora_r.png")
    if grid is not None:
        written.append(grid)
    return written
