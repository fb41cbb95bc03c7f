"""Tabular outputs: results.csv (one row per cell and stop point), results.json (every table), table.tex."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from apex.report.collect import METRICS, STOP
from apex.report.rows import EXPORTED

if TYPE_CHECKING:
    from apex.report.build import ReportData

COMPARISON_COLUMNS = EXPORTED  # apex.report.rows names every column once


def fmt_pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def fmt_points(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:+.{digits}f}"


METRIC_NAMES = {
    "rank_at_1": "rank@1",
    "recall_at_5": "recall@5",
    "recall_at_10": "recall@10",
    "mrr_at_10": "MRR@10",
    "ndcg_at_10": "nDCG@10",
}


def fmt_ci(low: float, high: float) -> str:
    """An interval of a difference in points, [low, high]."""
    return f"[{fmt_points(low)}, {fmt_points(high)}]" if np.isfinite(low) else "n/a"


def fmt_metric(value: float, metric: str) -> str:
    """rank@1 and recall as percentages (shares of queries); nDCG and MRR as scores with 3 decimals."""
    if metric in ("ndcg_at_10", "mrr_at_10"):
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"
    return fmt_pct(value)


def fmt_p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return "<0.0001" if value < 1e-4 else f"{value:.2g}" if value < 0.01 else f"{value:.3f}"


def fmt_count(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{int(value):,}"


def results_frame(data: ReportData) -> pd.DataFrame:
    """Wide results: one row per (cell, stop_fraction); metric columns, then the comparison with the baseline."""
    cells = data.cells
    keys = ["cell", "cell_label", STOP]
    wide = cells.drop_duplicates(keys)[[*keys, "n_seeds", "n_queries", "corpus_size"]].reset_index(drop=True)
    for metric in METRICS:
        part = cells[cells["metric"] == metric][[*keys, "mean", "sd", "ci_low", "ci_high"]]
        part = part.rename(columns={c: f"{metric}_{c}" for c in ("mean", "sd", "ci_low", "ci_high")})
        wide = wide.merge(part, on=keys, how="left")
    info = data.cell_info[["cell", "role"]]
    wide = wide.merge(info, on="cell", how="left")
    best = data.best[data.best["compared"].astype(bool)][["cell", STOP]].assign(is_best_stop=True)
    wide = wide.merge(best, on=["cell", STOP], how="left")
    wide["is_best_stop"] = wide["is_best_stop"].fillna(False).astype(bool)
    if len(data.comparisons):
        comp = data.comparisons[["cell", STOP, *COMPARISON_COLUMNS]].rename(
            columns={"ci_low": "diff_ci_low", "ci_high": "diff_ci_high", "role": "comparison"}
        )
        wide = wide.merge(comp, on=["cell", STOP], how="left")
        labels = data.meta["labels"]
        wide.insert(wide.columns.get_loc("baseline") + 1, "baseline_label", wide["baseline"].map(labels))
    return wide.sort_values(["cell_label", STOP], kind="stable").reset_index(drop=True)


def _plain(value: Any) -> Any:
    """JSON-safe Python values: numpy scalars unwrapped, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_plain(row) for row in frame.to_dict(orient="records")]


def write_csv(data: ReportData, path: Path) -> Path:
    results_frame(data).to_csv(path, index=False, float_format="%.6g")
    return path


def write_json(data: ReportData, path: Path) -> Path:
    config = dataclasses.asdict(data.config)
    config["baseline"] = str(data.config.baseline)
    config["tracking_uri"] = data.meta["tracking_uri"]  # never a password
    document = {
        "meta": _plain(data.meta),
        "config": _plain(config),
        "results": _records(results_frame(data)),
        "cells": _records(data.cells),
        "seeds": _records(data.seeds),
        "comparisons": _records(data.comparisons),
        "base_model": _records(data.base),
        "mcnemar": _records(data.mcnemar),
        "stops": _records(data.best),
        "aa_check": _records(data.aa),
        "cell_info": _records(data.cell_info),
        "notes": list(data.notes),
    }
    path.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")
    return path


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_table(data: ReportData) -> str:
    """A booktabs table: each compared cell at its stop point, the primary metric with its interval and the
    comparison with its baseline."""
    wide = results_frame(data)
    metric = str(data.meta["metric"])
    name = latex_escape(METRIC_NAMES[metric])
    best = wide[wide["is_best_stop"]]
    has_comp = "diff" in wide
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lrrrrrr}" if has_comp else r"\begin{tabular}{lrr}",
        r"\toprule",
        (
            f"Configuration & Stop & {name} ($\\times 100$) & $\\Delta$ (pts) [adj.\\ CI] & $p$ Holm & $p$ BH"
            + r" & MDE (pts) \\"
            if has_comp
            else f"Configuration & Stop & {name} ($\\times 100$) \\\\"
        ),
        r"\midrule",
    ]
    for r in best.to_dict(orient="records"):
        rank = (
            f"{100 * r[f'{metric}_mean']:.1f} [{100 * r[f'{metric}_ci_low']:.1f}, {100 * r[f'{metric}_ci_high']:.1f}]"
        )
        cells = [latex_escape(r["cell_label"]), f"{r[STOP]:g}", rank.replace("nan", "--")]
        if has_comp:
            if isinstance(r.get("baseline"), str) and r["baseline"] and r.get("comparison") == "primary":
                diff = f"{100 * r['diff']:+.1f} [{100 * r['ci_adj_low']:+.1f}, {100 * r['ci_adj_high']:+.1f}]"
                cells += [
                    diff.replace("nan", "--"),
                    latex_escape(fmt_p(r["p_crossed_holm"])),
                    latex_escape(fmt_p(r["p_crossed_bh"])),
                    f"{100 * r['mde']:.1f}".replace("nan", "--"),
                ]
            else:
                cells += ["baseline" if r["role"] == "baseline" else "--", "", "", ""]
        lines.append(" & ".join(cells) + r" \\")
    queries = fmt_count(wide["n_queries"].min()) if len(wide) else "n/a"
    corpus = fmt_count(wide["corpus_size"].min()) if len(wide) else "n/a"
    seeds = int(wide["n_seeds"].max()) if len(wide) else 0
    caption = (
        f"{name} ($\\times 100$) on {queries} test queries against a corpus of {corpus} documents, "
        f"mean of up to {seeds} seeds "
        f"at each configuration's pre-chosen stop point, with {100 * data.config.confidence:.0f}\\% "
        "intervals treating seeds and queries as crossed random factors. "
        f"$\\Delta$: difference from the baseline ({latex_escape(str(data.config.baseline))}) with its interval "
        "Bonferroni-adjusted to the primary comparisons; "
        "$p$: crossed seed $\\times$ query test, Holm and Benjamini--Hochberg adjusted over the primary comparisons; "
        f"MDE: minimum detectable effect of that test at {100 * data.config.power:.0f}\\% power and the corrected "
        f"level ($\\alpha = {data.config.alpha:g}$ / number of primary comparisons)."
    )
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{caption}}}", r"\label{tab:apex-rank1}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_latex(data: ReportData, path: Path) -> Path:
    path.write_text(latex_table(data), encoding="utf-8")
    return path
