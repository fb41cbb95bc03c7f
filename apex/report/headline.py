"""The headline: each primary comparison in plain words that match its numbers, and where both arms stand against
the base model (step 0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from apex.report.basemodel import standing
from apex.report.collect import STOP
from apex.report.tables import METRIC_NAMES, fmt_ci, fmt_count, fmt_metric, fmt_p, fmt_points

if TYPE_CHECKING:
    from apex.report.build import ReportData


def _points(value: float) -> str:
    return fmt_points(value).lstrip("+")


def verdict(row: dict[str, object], alpha: float, power: float, metric: str = "rank_at_1") -> str:
    """Plain words for one primary comparison, matching its numbers (verdict, adjusted interval, MDE)."""
    kind = str(row["verdict"])
    diff = float(row["diff"])
    direction = "better" if diff > 0 else "worse"
    m = int(row.get("family_size", 1) or 1)
    family = f"the {m} primary comparisons" if m > 1 else "the single primary comparison"
    seeds = int(row.get("n_seeds", 0) or 0)
    if kind == "untested":
        return "The per-query tables are missing, so there is no paired test; only the seed-level figures stand."
    if kind == "too few seeds":
        return (
            "**No verdict: one paired seed.** One model per arm says nothing about training randomness, so no test"
            " of the recipe is possible; run at least 3 seeds per arm (the same seeds in both)."
        )
    p_raw, p_holm = fmt_p(float(row["p_crossed"])), fmt_p(float(row["p_crossed_holm"]))
    if kind == "significant":
        text = f"It is **{direction}** than its baseline on {METRIC_NAMES[metric]}: significant after Holm correction"
        text += f" over {family}."
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
    if seeds == 2:
        text += (
            " Only 2 paired seeds: the test uses the seed stage's single degree of freedom (critical value"
            " t = 12.7 at α = 0.05), the only calibrated choice at 2 seeds; add a third seed per arm for a test"
            " with power."
        )
    mde, level = float(row.get("mde", np.nan)), float(row.get("mde_level", np.nan))
    design = f"{seeds} seeds × {fmt_count(float(row['n_queries']))} queries"
    if kind != "significant" and np.isfinite(mde):
        text += (
            f" This design ({design}) detects a true difference of {_points(mde)} points with"
            f" {100 * power:.0f}% power at the corrected level α/{m} = {level:.3g}, if the variance components are"
            " no larger than their 95% upper confidence limits from these runs (minimum detectable effect)"
        )
        text += (
            ": the observed difference is smaller, so this sweep cannot tell it from noise; it needs more seeds or"
            " queries (see `python -m apex.report plan`), not a conclusion of 'no effect'."
            if abs(diff) < mde
            else "."
        )
    return text


def base_words(data: ReportData, cell: str, baseline: str) -> str:
    """Where the two arms of one comparison stand against the base model (step 0), in words with figures."""
    base = data.base
    if base is None or base.empty:
        return ""
    rows = base.set_index("cell")
    if cell not in rows.index or baseline not in rows.index:
        return ""
    labels, metric = data.meta["labels"], METRIC_NAMES[data.meta["metric"]]
    one, two = rows.loc[cell].to_dict(), rows.loc[baseline].to_dict()
    where = {name: standing(row, data.config.alpha) for name, row in ((cell, one), (baseline, two))}
    figure = f"The base model (step 0, zero-shot) scores {fmt_metric(one['mean_baseline'], data.meta['metric'])}"

    def arm(name: str, row: dict[str, object]) -> str:
        return (
            f"{labels.get(name, name)} {fmt_metric(row['mean_cell'], data.meta['metric'])} "
            f"({fmt_points(row['diff'])} points {fmt_ci(row['ci_adj_low'], row['ci_adj_high'])}, Holm p "
            f"{fmt_p(row['p_crossed_holm'])})"
        )

    figures = f"{arm(cell, one)}; {arm(baseline, two)}"
    kinds = set(where.values())
    if kinds == {"below"}:
        words = f"**Both arms are below the base model**: fine-tuning hurt {metric} in both"
        words += "; 'better' above means 'hurt less', not that the recipe helps"
    elif kinds == {"above"}:
        words = "**Both arms beat the base model**"
    elif kinds == {"unmoved"}:
        words = "**Neither arm moved the base model** detectably (no significant difference from step 0)"
    else:
        parts = [f"{labels.get(name, name)} is {w}" for name, w in where.items()]
        words = "Against the base model: " + ", ".join(
            p.replace(" is above", " **beats it**")
            .replace(" is below", " is **below it**")
            .replace(" is unmoved", " is not distinguishable from it")
            for p in parts
        )
    return f"{figure}. {words} ({figures}; same crossed test, Holm over the {len(rows)} arms)."


def headline(data: ReportData) -> list[str]:
    """One paragraph per compared configuration, at the stop point fixed before the test figures were read."""
    comparisons = data.comparisons
    primary = comparisons[comparisons["role"] == "primary"] if len(comparisons) else comparisons
    if primary.empty:
        return [f"No configuration could be compared with a baseline ({data.config.baseline}); see the notes."]
    best = data.best.set_index("cell")
    labels, metric = data.meta["labels"], str(data.meta["metric"])
    name = METRIC_NAMES[metric]
    paragraphs = []
    for _, row in primary.iterrows():
        cell = row["cell"]
        stop_row = best.loc[cell].to_dict() if cell in best.index else {}
        basis = str(stop_row.get("basis", "?")) + (
            "; chosen from a tie: the earliest of equal scores" if stop_row.get("tied") else ""
        )
        if row["seed_stops"]:
            basis += f"; seeds judged at their cross-fitted stops {row['seed_stops']}"
        m = int(row["family_size"]) if np.isfinite(float(row["family_size"])) else 1
        level = f"{100 * (1 - data.config.alpha):.0f}%"
        interval = fmt_ci(row["ci_adj_low"], row["ci_adj_high"])
        intervals = (
            f"{level} interval adjusted for {m} comparisons (Bonferroni) {interval}; unadjusted "
            f"{100 * (1 - data.config.alpha):.0f}% interval {fmt_ci(row['ci_low'], row['ci_high'])}"
            if m > 1
            else f"{level} interval {interval}"
        )
        clusters = ""
        if np.isfinite(float(row["n_clusters"])) and int(row["n_clusters"]) < int(row["n_queries"]):
            clusters = (
                f" in {fmt_count(row['n_clusters'])} cluster(s) of queries sharing relevant documents"
                f" ({float(row['query_units']):.0f} effective query units)"
            )
        paragraphs.append(
            f"**{labels.get(cell, cell)}** against **{labels.get(row['baseline'], row['baseline'])}** at stop point "
            f"{row[STOP]:g} ({basis}): {name} {fmt_metric(row['mean_cell'], metric)} vs "
            f"{fmt_metric(row['mean_baseline'], metric)}, a difference of **{fmt_points(row['diff'])} points** "
            f"({intervals}). Primary metric {name} ({data.meta['metric_why']}); test with seeds and queries as "
            f"crossed random factors: p = {fmt_p(row['p_crossed'])} (Holm {fmt_p(row['p_crossed_holm'])}, BH "
            f"{fmt_p(row['p_crossed_bh'])}); {int(row['n_seeds'])} paired seed(s) × "
            f"{fmt_count(row.get('n_queries', np.nan))} queries{clusters}, corpus of "
            f"{fmt_count(row['corpus_size'])} documents. "
            + verdict(row.to_dict(), data.config.alpha, data.config.power, metric)
            + (" " + base_words(data, cell, str(row["baseline"]))).rstrip()
        )
    return paragraphs
