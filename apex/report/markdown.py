"""report.md: the headline in plain words first, then the tables a reader checks it against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from apex.report.collect import METRICS, STOP
from apex.report.compare import VERDICTS
from apex.report.tables import fmt_count, fmt_p, fmt_pct, fmt_points, results_frame

if TYPE_CHECKING:
    from apex.report.build import ReportData

METRIC_NAMES = {
    "rank_at_1": "rank@1",
    "recall_at_5": "recall@5",
    "recall_at_10": "recall@10",
    "mrr_at_10": "MRR@10",
    "ndcg_at_10": "nDCG@10",
}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(mean: float, low: float, high: float) -> str:
    if not np.isfinite(low):
        return fmt_pct(mean)
    return f"{fmt_pct(mean)} [{fmt_pct(low)}, {fmt_pct(high)}]"


def _points(value: float) -> str:
    return fmt_points(value).lstrip("+")


def verdict(row: dict[str, object], alpha: float, power: float) -> str:
    """Plain words for one comparison (its `verdict` column): real, robust across seeds, or below detection?"""
    kind = str(row["verdict"])
    diff, mde, mde_seeds = float(row["diff"]), float(row["mde_pairs"]), float(row["mde_seeds"])
    direction = "better" if diff > 0 else "worse"
    n_seeds = int(row["n_seeds"])
    if kind == "untested":
        return "The per-query tables are missing, so there is no paired test; only the seed-level figures stand."
    if kind == "robust":
        text = (
            f"It is **{direction}** than its baseline, robustly: significant after family-wise (Holm) correction,"
            " the interval over seeds and queries excludes zero, and the seed-level t-test agrees."
        )
    elif kind == "consistent":
        text = (
            f"It is **{direction}** than its baseline on these queries: significant after Holm, the interval over seeds"
            f" and queries excludes zero and the seeds agree with one another; with {n_seeds} seed(s) the seed-level"
            " t-test cannot confirm it on its own."
        )
    elif kind == "unstable":
        text = (
            f"These trained models are **{direction}** on these queries (significant after Holm), but training"
            " randomness is as large as the effect (the interval over seeds and queries includes zero, or the seeds"
            " disagree beyond query noise: heterogeneity p = "
            f"{fmt_p(float(row.get('p_heterogeneity', np.nan)))}). The recipe is not yet shown to be {direction};"
            " add seeds."
        )
    else:
        text = "**No significant difference** after correction."
        if np.isfinite(mde) and abs(diff) < mde:
            text += (
                f" The observed difference is below the minimum detectable effect ({_points(mde)} points over the"
                " pooled pairs): this sweep cannot tell a difference that small from noise; it needs more queries or"
                " seeds, not a conclusion of 'no effect'."
            )
        elif np.isfinite(mde):
            text += (
                f" A true difference of {_points(mde)} points would have been detected {100 * power:.0f}% of the time."
            )
    p_het = float(row.get("p_heterogeneity", np.nan))
    if kind != "unstable" and np.isfinite(p_het) and p_het <= alpha:
        text += (
            f" The seeds disagree more than query noise explains (heterogeneity p = {fmt_p(p_het)}): training"
            " randomness matters here; more seeds would make the comparison more trustworthy."
        )
    if np.isfinite(mde_seeds):
        if mde_seeds >= 1.0:
            text += f" The seed-level t-test, with {n_seeds} seeds, could not detect even a 100-point difference."
        else:
            text += f" The seed-level t-test needs a difference of {_points(mde_seeds)} points to detect it reliably."
    return text


def headline(data: ReportData) -> list[str]:
    """One paragraph per compared cell, at that cell's best stop point."""
    comparisons = data.comparisons
    if comparisons.empty:
        return [f"No cell could be compared with a baseline ({data.config.baseline}); see the notes at the end."]
    best = data.best.set_index("cell")
    labels = data.meta["labels"]
    level = f"{100 * data.config.confidence:.0f}%"
    paragraphs = []
    for _, row in comparisons.iterrows():
        cell = row["cell"]
        if cell not in best.index or row[STOP] != best.loc[cell, STOP]:
            continue
        basis = best.loc[cell, "basis"]
        chosen = "chosen by validation rank@1" if basis == "val_rank_at_1" else basis
        seeds, queries = int(row["n_seeds"]), fmt_count(row.get("n_queries", np.nan))
        paragraphs.append(
            f"**{labels.get(cell, cell)}** against **{labels.get(row['baseline'], row['baseline'])}** at stop point "
            f"{row[STOP]:g} ({chosen}): rank@1 {fmt_pct(row['mean_cell'])} vs {fmt_pct(row['mean_baseline'])}, "
            f"a difference of **{fmt_points(row['diff'])} points** ({level} interval {fmt_points(row['ci_low'])} to "
            f"{fmt_points(row['ci_high'])}; {seeds} seed(s) × {queries} queries, corpus of "
            f"{fmt_count(row['corpus_size'])} documents). Paired permutation test p = {fmt_p(row['p_perm'])} "
            f"(Holm {fmt_p(row['p_perm_holm'])}, BH {fmt_p(row['p_perm_bh'])}); minimum detectable effect "
            f"{fmt_points(row['mde_pairs']).lstrip('+')} points at {100 * data.config.power:.0f}% power. "
            + verdict(row.to_dict(), data.config.alpha, data.config.power)
        )
    return paragraphs or ["No compared cell has its best stop point among the shared stop points."]


def _cells_table(data: ReportData) -> str:
    wide = results_frame(data)
    header = ["configuration", "stop", "seeds", *(f"{METRIC_NAMES[m]} mean ± sd [CI]" for m in METRICS)]
    header += ["queries", "corpus"]
    rows = []
    for r in wide.to_dict(orient="records"):
        stop = f"{r[STOP]:g}" + (" ★" if r["is_best_stop"] else "")
        row = [r["cell_label"], stop, str(r["n_seeds"])]
        for m in METRICS:
            sd = f" ± {100 * r[f'{m}_sd']:.1f}" if np.isfinite(r[f"{m}_sd"]) else ""
            row.append(_interval(r[f"{m}_mean"], r[f"{m}_ci_low"], r[f"{m}_ci_high"]).replace(" [", f"{sd} [", 1))
        rows.append([*row, fmt_count(r["n_queries"]), fmt_count(r["corpus_size"])])
    return _table(header, rows)


def _comparison_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    header = ["configuration", "baseline", "stop", "Δ rank@1 [CI] (pts)", "verdict", "n10 / n01", "p perm (Holm, BH)"]
    header += ["p t-test (Holm, BH)", "McNemar seeds sig.", "seed het. p", "Cohen's h", "OR disc.", "MDE pairs"]
    header += ["MDE seeds"]
    rows = []
    for r in data.comparisons.to_dict(orient="records"):
        rows.append(
            [
                labels.get(r["cell"], r["cell"]),
                labels.get(r["baseline"], r["baseline"]),
                f"{r[STOP]:g}",
                f"{fmt_points(r['diff'])} [{fmt_points(r['ci_low'])}, {fmt_points(r['ci_high'])}]",
                r["verdict"],
                f"{r['n10']} / {r['n01']}",
                f"{fmt_p(r['p_perm'])} ({fmt_p(r['p_perm_holm'])}, {fmt_p(r['p_perm_bh'])})",
                f"{fmt_p(r['p_ttest'])} ({fmt_p(r['p_ttest_holm'])}, {fmt_p(r['p_ttest_bh'])}) low power",
                f"{r.get('mcnemar_seeds_significant_holm', 0)} of {r['n_seeds']}",
                fmt_p(r["p_heterogeneity"]),
                f"{r['cohens_h']:.3f}" if np.isfinite(r["cohens_h"]) else "n/a",
                f"{r['odds_ratio']:.2f}" if np.isfinite(r["odds_ratio"]) else "n/a",
                _points(r["mde_pairs"]),
                "> 100" if r["mde_seeds"] >= 1.0 else _points(r["mde_seeds"]),
            ]
        )
    return _table(header, rows)


def _mcnemar_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    rows = [
        [
            labels.get(r["cell"], r["cell"]),
            f"{r[STOP]:g}",
            str(r["seed"]),
            fmt_count(r["n_pairs"]),
            f"{r['n10']} / {r['n01']}",
            fmt_p(r["p_mcnemar"]),
            fmt_p(r["p_mcnemar_holm"]),
            fmt_p(r["p_mcnemar_bh"]),
        ]
        for r in data.mcnemar.to_dict(orient="records")
    ]
    return _table(["configuration", "stop", "seed", "pairs", "n10 / n01", "p", "p Holm", "p BH"], rows)


def _best_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    rows = []
    for r in data.best.to_dict(orient="records"):
        val = fmt_pct(r["val_rank_at_1"]) if pd.notna(r["val_rank_at_1"]) else "not logged"
        rows.append([labels.get(r["cell"], r["cell"]), f"{r[STOP]:g}", r["basis"], val])
    return _table(["configuration", "best stop", "chosen by", "val rank@1"], rows)


def render(data: ReportData, figures: list[str]) -> str:
    """The whole report.md; `figures` are paths relative to the report folder."""
    meta = data.meta
    wide = results_frame(data)
    parts = [
        f"# apex report: {meta['name']}",
        "",
        f"{meta['selection']}: {meta['n_runs']} run(s) in {meta['n_cells']} configuration(s); baseline "
        f"`{meta['baseline_spec']}`. Test queries: {fmt_count(wide['n_queries'].min())}; corpus: "
        f"{fmt_count(wide['corpus_size'].min())} documents; seeds per configuration: up to "
        f"{int(wide['n_seeds'].max())}.",
        "",
        "## Headline",
        "",
        *[p + "\n" for p in headline(data)],
        "## Best stop point per configuration",
        "",
        _best_table(data),
        "",
        "## Metrics by configuration and stop point",
        "",
        f"Percentages; mean ± standard deviation over seeds (points), then the {100 * data.config.confidence:.0f}% "
        "hierarchical-bootstrap interval (seeds, then queries within each seed). ★ marks the best stop point.",
        "",
        _cells_table(data),
        "",
    ]
    if not data.comparisons.empty:
        parts += [
            "## Comparisons with the baseline (rank@1, every stop point)",
            "",
            "Δ in percentage points (configuration − baseline), paired on seeds and queries. p perm: sign-flip "
            "permutation test over all (seed, query) pairs (primary). p t-test: seed-level paired t-test. "
            "Holm controls the family-wise error, BH the false discovery rate, each over every comparison here. "
            "seed het. p: Cochran's Q, small when seeds disagree beyond query noise. MDE: minimum detectable effect "
            f"at {100 * data.config.power:.0f}% power, α = {data.config.alpha:g} (pooled pairs; seed-level t-test).",
            "",
            _comparison_table(data),
            "",
            "Verdicts: " + "; ".join(f"**{key}**: {text}" for key, text in VERDICTS.items()) + ".",
            "",
            "### Exact McNemar test per seed",
            "",
            _mcnemar_table(data),
            "",
        ]
    if figures:
        parts += ["## Figures", ""] + [f"![{name}]({name})\n" for name in figures]
    parts += [
        "## How to read this",
        "",
        "See `docs/report.md` in the apex repository for every column, the formulas and the caveats.",
        "",
    ]
    if data.notes:
        parts += ["## Notes", "", *[f"- {note}" for note in data.notes], ""]
    return "\n".join(parts)
