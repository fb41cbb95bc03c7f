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


def _ci(low: float, high: float) -> str:
    return f"[{fmt_points(low)}, {fmt_points(high)}]" if np.isfinite(low) else "n/a"


def verdict(row: dict[str, object], alpha: float, power: float) -> str:
    """Plain words for one primary comparison, matching its numbers (verdict, adjusted interval, MDE)."""
    kind = str(row["verdict"])
    diff = float(row["diff"])
    direction = "better" if diff > 0 else "worse"
    m = int(row.get("family_size", 1) or 1)
    family = f"the {m} primary comparisons" if m > 1 else "the single primary comparison"
    if kind == "untested":
        return "The per-query tables are missing, so there is no paired test; only the seed-level figures stand."
    p_raw, p_holm = fmt_p(float(row["p_crossed"])), fmt_p(float(row["p_crossed_holm"]))
    if kind == "significant":
        text = f"It is **{direction}** than its baseline: significant after Holm correction over {family}."
        if float(row["ci_adj_low"]) <= 0.0 <= float(row["ci_adj_high"]):
            text += " (The Bonferroni interval, more conservative than Holm's step-down test, still touches 0.)"
    elif kind == "inconclusive after correction":
        text = (
            f"**Inconclusive after correction**: p = {p_raw} is below α = {alpha:g} on its own, but not after Holm"
            f" correction over {family} (Holm p = {p_holm}). A lead to confirm with more seeds or a single"
            " pre-planned comparison, not a finding."
        )
    else:
        text = f"**No significant difference** (p = {p_raw}, Holm {p_holm})."
    mde, level = float(row.get("mde", np.nan)), float(row.get("mde_level", np.nan))
    design = f"{int(row['n_seeds'])} seed(s) × {fmt_count(float(row['n_queries']))} queries"
    if kind != "significant" and np.isfinite(mde):
        text += (
            f" This design ({design}) detects a true difference of {_points(mde)} points with"
            f" {100 * power:.0f}% power at the corrected level α/{m} = {level:.3g} (minimum detectable effect of"
            " this test)"
        )
        text += (
            ": the observed difference is smaller, so this sweep cannot tell it from noise; it needs more seeds or"
            " queries (see `python -m apex.report plan`), not a conclusion of 'no effect'."
            if abs(diff) < mde
            else "."
        )
    elif kind != "significant":
        text += " With one seed no minimum detectable effect covers training randomness."
    if not bool(row.get("seed_covered", True)):
        text += " Only one seed: the test covers query sampling, not training randomness."
    return text


def headline(data: ReportData) -> list[str]:
    """One paragraph per compared configuration, at the stop point fixed before the test figures were read."""
    comparisons = data.comparisons
    primary = comparisons[comparisons["role"] == "primary"] if len(comparisons) else comparisons
    if primary.empty:
        return [f"No configuration could be compared with a baseline ({data.config.baseline}); see the notes."]
    best = data.best.set_index("cell")
    labels = data.meta["labels"]
    paragraphs = []
    for _, row in primary.iterrows():
        cell = row["cell"]
        basis = best.loc[cell, "basis"] if cell in best.index else "?"
        m = int(row["family_size"]) if np.isfinite(float(row["family_size"])) else 1
        level = f"{100 * (1 - data.config.alpha):.0f}%"
        interval = _ci(row["ci_adj_low"], row["ci_adj_high"])
        unadjusted = f"unadjusted {100 * data.config.confidence:.0f}% interval {_ci(row['ci_low'], row['ci_high'])}"
        intervals = (
            f"{level} interval adjusted for {m} comparisons (Bonferroni) {interval}; {unadjusted}"
            if m > 1
            else f"{level} interval {interval}"
        )
        paragraphs.append(
            f"**{labels.get(cell, cell)}** against **{labels.get(row['baseline'], row['baseline'])}** at stop point "
            f"{row[STOP]:g} ({basis}): rank@1 {fmt_pct(row['mean_cell'])} vs {fmt_pct(row['mean_baseline'])}, "
            f"a difference of **{fmt_points(row['diff'])} points** ({intervals}). "
            f"Primary test, seeds and queries as crossed random factors: p = {fmt_p(row['p_crossed'])} "
            f"(Holm {fmt_p(row['p_crossed_holm'])}, BH {fmt_p(row['p_crossed_bh'])}); "
            f"{int(row['n_seeds'])} seed(s) × {fmt_count(row.get('n_queries', np.nan))} queries, corpus of "
            f"{fmt_count(row['corpus_size'])} documents. "
            + verdict(row.to_dict(), data.config.alpha, data.config.power)
        )
    return paragraphs


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


def _primary_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    header = ["configuration", "baseline", "stop", "Δ rank@1 (pts)", "adjusted interval", "unadjusted interval"]
    header += ["p (Holm, BH)", "verdict", "MDE (level)"]
    rows = []
    for r in data.comparisons[data.comparisons["role"] == "primary"].to_dict(orient="records"):
        mde = f"{_points(r['mde'])} (α {r['mde_level']:.2g})" if np.isfinite(r["mde"]) else "n/a (one seed)"
        rows.append(
            [
                labels.get(r["cell"], r["cell"]),
                labels.get(r["baseline"], r["baseline"]),
                f"{r[STOP]:g}",
                fmt_points(r["diff"]),
                _ci(r["ci_adj_low"], r["ci_adj_high"]),
                _ci(r["ci_low"], r["ci_high"]),
                f"{fmt_p(r['p_crossed'])} ({fmt_p(r['p_crossed_holm'])}, {fmt_p(r['p_crossed_bh'])})",
                r["verdict"],
                mde if r["verdict"] != "untested" else "n/a",
            ]
        )
    return _table(header, rows)


def _other_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    header = ["configuration", "stop", "row", "Δ [unadjusted interval]", "p crossed", "p pooled (these models)"]
    header += ["n10 / n01", "seed het. p"]
    rows = []
    for r in data.comparisons.to_dict(orient="records"):
        rows.append(
            [
                labels.get(r["cell"], r["cell"]),
                f"{r[STOP]:g}",
                r["role"],
                f"{fmt_points(r['diff'])} {_ci(r['ci_low'], r['ci_high'])}",
                fmt_p(r["p_crossed"]),
                fmt_p(r["p_pooled"]),
                f"{fmt_count(r['n10'])} / {fmt_count(r['n01'])}",
                fmt_p(r["p_heterogeneity"]),
            ]
        )
    return _table(header, rows)


def _aa_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    parts = []
    for cell, group in data.aa.groupby("cell", sort=True):
        k, n = int(group["rejected"].sum()), len(group)
        first = group.iloc[0]
        parts.append(
            f"- **{labels.get(cell, cell)}** at stop {first[STOP]:g}: seeds {first['seeds_a']} against "
            f"{first['seeds_b']}: {fmt_points(first['diff'])} points {_ci(first['ci_low'], first['ci_high'])}, "
            f"p = {fmt_p(first['p_crossed'])}. Over {n} half-splits the primary test rejected {k} "
            f"(about {data.config.alpha * n:.1f} expected from a test that holds its level; splits share seeds)."
        )
    return "\n".join(parts)


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
            fmt_p(r["p_mcnemar_holm"]) if r["role"] == "primary" else "exploratory",
        ]
        for r in data.mcnemar[data.mcnemar["role"] != "zero-shot"].to_dict(orient="records")
    ]
    return _table(["configuration", "stop", "seed", "pairs", "n10 / n01", "p", "p Holm (primary seeds)"], rows)


def _best_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    rows = []
    for r in data.best.to_dict(orient="records"):
        val = fmt_pct(r["val_rank_at_1"]) if pd.notna(r["val_rank_at_1"]) else "not logged"
        base = fmt_pct(r["val_baseline"]) if pd.notna(r["val_baseline"]) else ""
        rows.append([labels.get(r["cell"], r["cell"]), f"{r[STOP]:g}", r["basis"], val, base])
    return _table(["configuration", "stop", "chosen by", "val rank@1", "baseline's val rank@1"], rows)


def _comparison_sections(data: ReportData) -> list[str]:
    """The primary comparisons, every stop point with the secondary tests, McNemar per seed."""
    return [
        "## Primary comparisons (rank@1)",
        "",
        "One per configuration, at its stop point above. Δ in points (configuration − baseline). Primary test: "
        "seeds and queries as crossed random factors (docs/report.md). Holm (family-wise) and BH (false "
        "discovery rate) over these rows only. Adjusted interval: Bonferroni over these rows, the level of the "
        f"verdict; unadjusted: {100 * data.config.confidence:.0f}% for this row alone. MDE: the true difference "
        f"this test detects with {100 * data.config.power:.0f}% power at the corrected level.",
        "",
        _primary_table(data),
        "",
        "Verdicts: " + "; ".join(f"**{key}**: {text}" for key, text in VERDICTS.items()) + ".",
        "",
        "## Every stop point, and the secondary tests",
        "",
        "Unadjusted. p crossed: the primary test at that stop point (exploratory off the chosen stop). p pooled: "
        "sign-flip test over all (seed, query) pairs; like McNemar per seed it treats the trained models as "
        "fixed and answers 'do *these* models differ on *these* queries?', not whether the recipe is better. "
        "seed het. p: Cochran's Q, small when the seeds' differences disagree beyond query noise.",
        "",
        _other_table(data),
        "",
        "### Exact McNemar test per seed",
        "",
        _mcnemar_table(data),
        "",
    ]


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
        "## Stop points",
        "",
        f"Rule: {meta['stop_rule']}. A comparison is judged at one stop point chosen without test figures; step 0"
        " (the same base model in both arms) is never chosen and never tested; every other stop point is exploratory.",
        "",
        _best_table(data),
        "",
        "## Metrics by configuration and stop point",
        "",
        f"Percentages; mean ± standard deviation over seeds (points), then the {100 * data.config.confidence:.0f}% "
        "interval with seeds and queries as crossed random factors. ★ marks the stop point of the table above.",
        "",
        _cells_table(data),
        "",
    ]
    if not data.comparisons.empty:
        parts += _comparison_sections(data)
    if not data.aa.empty:
        parts += [
            "## Built-in A/A check",
            "",
            "A baseline with 6 or more seeds, split into two halves of the same"
            " recipe and compared with the primary test: every rejection here is a false positive.",
            "",
            _aa_table(data),
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
