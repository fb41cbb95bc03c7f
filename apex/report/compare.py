"""Each configuration against its baseline on the primary metric (report.metric): one primary comparison per
configuration, the rest exploratory; and every arm against the base model (step 0) in a family of its own.

Pairing: runs pair by seed (same seed in both arms), queries by query_id; only queries present in every paired run
are kept, so the per-query differences form a (seeds × queries) matrix d = cell − baseline (in {-1, 0, 1} for
rank@1, continuous for nDCG@10, MRR@10 and recall with several relevant documents). Queries that share a relevant
document are linked (apex.report.clusters) and the query stage of every test and interval is cluster-robust.

- Primary (one row per configuration, at the stop point `apex.report.stops` chose before reading test figures; each
  seed's pair at its cross-fitted stop): the crossed seed × query test and interval (`apex.report.crossed`), Holm
  and BH over the family of primary rows, the interval Bonferroni-adjusted to the family beside the unadjusted one,
  and the minimum detectable effect at the corrected level alpha / m from the variance components' 95% upper
  confidence limits. Fewer than 2 paired seeds: no verdict (the test would cover query sampling only).
- Base model (apex.report.basemodel): each arm at the chosen stop against its own step 0, same test, own family.
- Exploratory (every other trained stop point): the same figures unadjusted, and no verdict.
- Zero-shot (stop 0): the same base model in both arms; listed, never tested, in no family.
- Secondary, for every row: the pooled sign-flip test over all (seed, query) pairs and the exact McNemar test per
  seed (rank@1 only: it counts discordant 0/1 pairs). They treat the trained models as fixed: they answer "do
  *these* models differ on *these* queries?", not whether the recipe is better. Cochran's Q says whether the
  seeds' differences disagree beyond query noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.clusters import QueryClusters
from apex.report.collect import STOP, PerQueryLoader, SweepData, clusters_of, per_query_values
from apex.report.config import ReportConfig
from apex.report.crossed import Components, cochran_cox_critical, crossed_mean
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import cohens_h, discordant_odds_ratio, mcnemar_exact, seed_heterogeneity, sign_flip_test
from apex.report.rows import COLUMNS, ComparisonRow
from apex.report.stops import StopChoice

log = logging.getLogger("apex.report")

VERDICTS = {
    "significant": "the primary crossed test rejects after Holm correction over the primary comparisons",
    "inconclusive after correction": "p <= alpha before correction, not after Holm over the primary comparisons",
    "no significant difference": "p > alpha; read the minimum detectable effect before concluding anything",
    "too few seeds": "one paired seed: the test would cover query sampling only, not training randomness; no claim",
    "untested": "per-query tables missing: no paired test",
    "exploratory": "not the pre-chosen stop point: unadjusted figures, no claim",
    "zero-shot": "stop 0 is the same base model in both arms: nothing to test",
}


def classify(p_raw: float, p_holm: float, alpha: float, n_seeds: int = 3) -> str:
    """Verdict of a primary row from its raw and Holm-adjusted p-values and its paired seeds."""
    if not np.isfinite(p_raw):
        return "untested"
    if n_seeds < 2:
        return "too few seeds"
    if p_holm <= alpha:
        return "significant"
    return "inconclusive after correction" if p_raw <= alpha else "no significant difference"


@dataclass
class Comparisons:
    table: pd.DataFrame  # one row per (cell, stop_fraction): ComparisonRow columns
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)


@dataclass
class Outcomes:
    """Aligned per-query values of two arms: a, b (S, Q) on the shared queries, and how those queries cluster."""

    a: np.ndarray
    b: np.ndarray
    clusters: QueryClusters | None


def aligned_outcomes(
    loader: PerQueryLoader,
    a_runs: pd.DataFrame,
    b_runs: pd.DataFrame,
    seeds: list[int],
    notes: list[str],
    metric: str = "rank_at_1",
) -> Outcomes | None:
    """Per-query `metric` of both arms, (S, Q) each, on the queries every paired run has; None if a table is missing."""
    tables = []
    for seed in seeds:
        pair = [loader.load(runs.loc[seed, "run_id"], int(runs.loc[seed, "step"])) for runs in (a_runs, b_runs)]
        if pair[0] is None or pair[1] is None:
            return None
        tables.extend(pair)
    shared = set(tables[0]["query_id"])
    for table in tables[1:]:
        shared &= set(table["query_id"])
    dropped = sum(len(t) for t in tables) - len(shared) * len(tables)
    if dropped:
        notes.append(
            f"runs of {a_runs['cell'].iloc[0]} / {b_runs['cell'].iloc[0]} step {int(a_runs['step'].iloc[0])}: "
            f"{dropped} query row(s) not shared by every paired run were left out"
        )
    kept = [t[t["query_id"].isin(shared)] for t in tables]  # sorted by query_id
    values = [per_query_values(t)[metric] for t in kept]
    return Outcomes(np.stack(values[0::2]), np.stack(values[1::2]), clusters_of(kept[0]))


def _check_same_data(sweep: SweepData, a_runs: pd.DataFrame, b_runs: pd.DataFrame, seeds: list[int], notes) -> None:
    """Note paired runs whose dataset fingerprints differ: their queries may share ids but not content."""
    fingerprint = sweep.runs.set_index("run_id")["dataset_fingerprint"]
    for seed in seeds:
        a_id, b_id = a_runs.loc[seed, "run_id"], b_runs.loc[seed, "run_id"]
        if fingerprint.get(a_id) != fingerprint.get(b_id):
            notes.append(f"runs {a_id} / {b_id} (seed {seed}) carry different apex.dataset_fingerprint tags")


def paired_statistics(
    outcomes: Outcomes, config: ReportConfig, rng: np.random.Generator, binary: bool = True
) -> dict[str, object]:
    """Every figure of one comparison from aligned (S, Q) matrices (unadjusted)."""
    a, b = outcomes.a, outcomes.b
    d = a - b
    result = crossed_mean(d, outcomes.clusters)
    low, high = result.interval(config.confidence)
    n10, n01 = int(np.sum(d > 0)), int(np.sum(d < 0))
    upper = Components.upper(result) if d.shape[0] >= 2 else None
    clusters = outcomes.clusters
    return {
        "n_seeds": d.shape[0],
        "n_queries": d.shape[1],
        "n_clusters": clusters.n_clusters if clusters is not None else d.shape[1],
        "query_units": float(result.query_units),
        "n_pairs": int(d.size),
        "mean_cell": float(a.mean()),
        "mean_baseline": float(b.mean()),
        "diff": float(result.estimate),
        "se": float(result.se),
        "v_seed_stage": float(result.var_seed_stage),
        "v_query_stage": float(result.var_query_stage),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_crossed": float(result.pvalue()),
        "var_seed": float(result.var_seed),
        "var_query": float(result.var_query),
        "var_resid": float(result.var_resid),
        "var_seed_upper": upper.seed if upper else np.nan,
        "var_query_upper": upper.query if upper else np.nan,
        "seed_covered": result.seed_covered,
        "n10": n10,
        "n01": n01,
        "discordance": (n10 + n01) / d.size,
        "p_pooled": sign_flip_test(d.ravel(), config.n_permutations, rng).pvalue,
        "p_heterogeneity": seed_heterogeneity(list(d)).pvalue,
        "cohens_h": cohens_h(float(a.mean()), float(b.mean())) if binary else np.nan,
        "odds_ratio": discordant_odds_ratio(n10, n01) if binary else np.nan,
    }


def _runs_at(metrics: pd.DataFrame, cell: str, stops: dict[int, float]) -> pd.DataFrame:
    """One run row per seed, each at its own stop (seed -> stop)."""
    rows = metrics[metrics["cell"] == cell]
    picked = [rows[(rows["seed"] == seed) & np.isclose(rows[STOP], stop)] for seed, stop in stops.items()]
    return pd.concat(picked).set_index("seed", drop=False)


def _row(
    sweep: SweepData,
    loader: PerQueryLoader,
    key: tuple[str, str, float, str],
    runs: tuple[pd.DataFrame, pd.DataFrame],
    context: tuple[ReportConfig, np.random.Generator, list[str], str],
) -> tuple[ComparisonRow, Outcomes | None, list[int]] | None:
    """The comparison row of two arms' runs (indexed by seed), or None when no seed pairs."""
    (cell, baseline, stop, role), (a_runs, b_runs) = key, runs
    config, rng, notes, metric = context
    seeds = sorted(set(a_runs.index) & set(b_runs.index))
    unpaired = len(a_runs) + len(b_runs) - 2 * len(seeds)
    if unpaired and role != "base model":
        notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: {unpaired} run(s) without a same-seed partner")
    if not seeds:
        return None
    _check_same_data(sweep, a_runs, b_runs, seeds, notes)
    row = ComparisonRow(cell, baseline, float(stop), role, metric, corpus_size=float(a_runs["corpus_size"].min()))
    outcomes = aligned_outcomes(loader, a_runs, b_runs, seeds, notes, metric)
    if outcomes is not None and outcomes.a.shape[1] < 2:
        notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: fewer than 2 shared queries; no paired test")
        outcomes = None
    if outcomes is None:
        notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: per-query tables missing; no paired test")
        row.n_seeds, row.mean_cell, row.mean_baseline = (
            len(seeds),
            float(a_runs[metric].mean()),
            float(b_runs[metric].mean()),
        )
        row.diff = row.mean_cell - row.mean_baseline
        return row, None, seeds
    for name, value in paired_statistics(outcomes, config, rng, binary=metric == "rank_at_1").items():
        setattr(row, name, value)
    if role == "zero-shot":
        row.p_crossed = row.p_pooled = np.nan  # one network in both arms: listed, not tested
    return row, outcomes, seeds


def compare_pair(
    sweep: SweepData,
    loader: PerQueryLoader,
    cell: str,
    baseline: str,
    choice: StopChoice | None,
    context: tuple[ReportConfig, np.random.Generator, list[str], str],
) -> tuple[list[ComparisonRow], list[dict[str, object]]]:
    """Rows of the comparison and McNemar tables for one cell against its baseline, at every shared stop point."""
    metrics = sweep.metrics
    mine, theirs = metrics[metrics["cell"] == cell], metrics[metrics["cell"] == baseline]
    rows, mcnemar_rows = [], []
    for stop in sorted(set(mine[STOP]) & set(theirs[STOP])):
        chosen = choice is not None and stop == choice.stop
        if chosen and not choice.agrees:
            # The primary row pairs each seed at its cross-fitted stop; the marked stop's own row is left out.
            a_runs, b_runs = _runs_at(metrics, cell, choice.seed_stops), _runs_at(metrics, baseline, choice.seed_stops)
            seed_stops = " ".join(f"{s}:{v:g}" for s, v in sorted(choice.seed_stops.items()))
        else:
            a_runs = mine[mine[STOP] == stop].set_index("seed", drop=False)
            b_runs = theirs[theirs[STOP] == stop].set_index("seed", drop=False)
            seed_stops = ""
        role = "zero-shot" if stop == 0 else ("primary" if chosen else "exploratory")
        made = _row(sweep, loader, (cell, baseline, stop, role), (a_runs, b_runs), context)
        if made is None:
            continue
        row, outcomes, seeds = made
        row.seed_stops = seed_stops
        rows.append(row)
        if outcomes is None or context[3] != "rank_at_1":
            continue
        for seed, a_s, b_s in zip(seeds, outcomes.a, outcomes.b, strict=True):
            n10, n01 = int(np.sum(a_s > b_s)), int(np.sum(a_s < b_s))
            mcnemar_rows.append(
                {"cell": cell, "baseline": baseline, STOP: stop, "role": role, "seed": seed}
                | {"n_pairs": int(a_s.size), "n10": n10, "n01": n01}
            )
    return rows, mcnemar_rows


def family(table: pd.DataFrame, config: ReportConfig, role: str = "primary") -> pd.DataFrame:
    """Holm/BH over the rows of `role`, their family-adjusted interval and MDE, the verdicts."""
    members = (table["role"] == role) & np.isfinite(table["p_crossed"].astype(float))
    m = int(members.sum())
    table.loc[table["role"] == role, "family_size"] = m
    if m:
        p = table.loc[members, "p_crossed"].to_numpy(dtype=np.float64)
        table.loc[members, "p_crossed_holm"] = holm(p)
        table.loc[members, "p_crossed_bh"] = benjamini_hochberg(p)
    for i, row in table.iterrows():
        if row["role"] == "zero-shot" or not np.isfinite(float(row["var_resid"])):
            continue
        level = config.alpha / m if members[i] else config.alpha
        seeds, queries = int(row["n_seeds"]), int(row["n_queries"])
        share = float(row["query_units"]) / queries
        table.loc[i, "mde_level"] = level
        if seeds >= 2:
            upper = Components(float(row["var_seed_upper"]), float(row["var_query_upper"]), float(row["var_resid"]))
            table.loc[i, "mde"] = Components(upper.seed, upper.query, upper.resid, share).mde(
                seeds, queries, level, config.power
            )
        if members[i]:
            # The interval at the verdict's level: Bonferroni over the family (simultaneous coverage 1 - alpha).
            stages = (np.float64(row["v_seed_stage"]), np.float64(row["v_query_stage"]))
            half = float(cochran_cox_critical(*stages, seeds, float(row["query_units"]), level)) * float(row["se"])
            table.loc[i, "ci_adj_low"] = float(row["diff"]) - half
            table.loc[i, "ci_adj_high"] = float(row["diff"]) + half
    verdicts = [
        classify(float(r["p_crossed"]), float(r["p_crossed_holm"]), config.alpha, int(r["n_seeds"]))
        if r["role"] == role
        else r["verdict"] or r["role"]
        for r in table.to_dict(orient="records")
    ]
    table["verdict"] = verdicts
    return table


def compare_all(
    sweep: SweepData,
    loader: PerQueryLoader,
    pairs: dict[str, str],
    choices: dict[str, StopChoice | None],
    config: ReportConfig,
    rng: np.random.Generator,
    notes: list[str],
    metric: str = "rank_at_1",
) -> Comparisons:
    """Every cell against its baseline; the primary family is one row per cell at its chosen stop point."""
    rows, mcnemar_rows = [], []
    context = (config, rng, notes, metric)
    for cell in sorted(pairs):
        if choices.get(cell) is None:
            notes.append(f"cell {cell}: no trained stop point shared with its baseline (or not report.stop)")
        cell_rows, cell_mcnemar = compare_pair(sweep, loader, cell, pairs[cell], choices.get(cell), context)
        rows.extend(cell_rows)
        mcnemar_rows.extend(cell_mcnemar)
    table = pd.DataFrame([r.as_dict() for r in rows], columns=list(COLUMNS))
    columns = ["cell", "baseline", STOP, "role", "seed", "n_pairs", "n10", "n01"]
    mcnemar = pd.DataFrame(mcnemar_rows, columns=columns)
    mcnemar["p_mcnemar"] = mcnemar_exact(mcnemar["n10"].to_numpy(), mcnemar["n01"].to_numpy()) if len(mcnemar) else []
    # McNemar's family: the seeds of the primary rows (secondary test; other rows stay unadjusted).
    mcnemar["p_mcnemar_holm"] = np.nan
    primary = (mcnemar["role"] == "primary").to_numpy()
    if primary.any():
        mcnemar.loc[primary, "p_mcnemar_holm"] = holm(mcnemar.loc[primary, "p_mcnemar"].to_numpy(dtype=np.float64))
    if len(table):
        table = family(table, config)
    return Comparisons(table, mcnemar)
