"""Each configuration against its baseline, on rank@1: one primary comparison per configuration, the rest exploratory.

Pairing: runs pair by seed (same seed in both arms), queries by query_id; only queries present in every paired run
are kept, so the per-query differences form a (seeds × queries) matrix d = cell − baseline in {-1, 0, 1}.

- Primary (one row per configuration, at the stop point `apex.report.stops` chose before reading test figures):
  the crossed seed × query test and interval (`apex.report.crossed`), Holm and BH over the family of primary rows,
  the interval Bonferroni-adjusted to the family beside the unadjusted one, and the minimum detectable effect of
  that test at the corrected level alpha / m.
- Exploratory (every other trained stop point): the same figures unadjusted, and no verdict.
- Zero-shot (stop 0): the same base model in both arms; listed, never tested, in no family.
- Secondary, for every row: the pooled sign-flip test over all (seed, query) pairs and the exact McNemar test per
  seed. They treat the trained models as fixed: they answer "do *these* models differ on *these* queries?", not
  whether the recipe is better. Cochran's Q says whether the seeds' differences disagree beyond query noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.collect import STOP, PerQueryLoader, SweepData, per_query_values
from apex.report.config import ReportConfig
from apex.report.crossed import Components, cochran_cox_critical, crossed_mean
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import cohens_h, discordant_odds_ratio, mcnemar_exact, seed_heterogeneity, sign_flip_test
from apex.report.stops import StopChoice

log = logging.getLogger("apex.report")

METRIC = "rank_at_1"

VERDICTS = {
    "significant": "the primary crossed test rejects after Holm correction over the primary comparisons",
    "inconclusive after correction": "p <= alpha before correction, not after Holm over the primary comparisons",
    "no significant difference": "p > alpha; read the minimum detectable effect before concluding anything",
    "untested": "per-query tables missing: no paired test",
    "exploratory": "not the pre-chosen stop point: unadjusted figures, no claim",
    "zero-shot": "stop 0 is the same base model in both arms: nothing to test",
}


def classify(p_raw: float, p_holm: float, alpha: float) -> str:
    """Verdict of a primary row from its raw and Holm-adjusted p-values."""
    if not np.isfinite(p_raw):
        return "untested"
    if p_holm <= alpha:
        return "significant"
    return "inconclusive after correction" if p_raw <= alpha else "no significant difference"


# Columns of one comparison row before the family columns (a row whose tables are missing leaves most blank).
ROW_COLUMNS = [
    *("cell", "baseline", STOP, "role", "corpus_size", "n_seeds", "n_queries", "n_pairs", "mean_cell"),
    *("mean_baseline", "diff", "se", "v_seed_stage", "v_query_stage", "ci_low", "ci_high", "p_crossed"),
    *("var_seed", "var_query", "var_resid", "seed_covered", "n10", "n01", "discordance", "p_pooled"),
    *("p_heterogeneity", "cohens_h", "odds_ratio"),
]


@dataclass
class Comparisons:
    table: pd.DataFrame  # one row per (cell, stop_fraction)
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)


def aligned_outcomes(
    loader: PerQueryLoader, a_runs: pd.DataFrame, b_runs: pd.DataFrame, seeds: list[int], notes: list[str]
):
    """(a, b) rank@1 matrices (S, Q) on the queries every paired run has; None if a table is missing."""
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
    values = [per_query_values(t[t["query_id"].isin(shared)])[METRIC] for t in tables]  # sorted by query_id
    return np.stack(values[0::2]), np.stack(values[1::2])


def _check_same_data(sweep: SweepData, a_runs: pd.DataFrame, b_runs: pd.DataFrame, seeds: list[int], notes) -> None:
    """Note paired runs whose dataset fingerprints differ: their queries may share ids but not content."""
    fingerprint = sweep.runs.set_index("run_id")["dataset_fingerprint"]
    for seed in seeds:
        a_id, b_id = a_runs.loc[seed, "run_id"], b_runs.loc[seed, "run_id"]
        if fingerprint.get(a_id) != fingerprint.get(b_id):
            notes.append(f"runs {a_id} / {b_id} (seed {seed}) carry different apex.dataset_fingerprint tags")


def paired_statistics(a: np.ndarray, b: np.ndarray, config: ReportConfig, rng: np.random.Generator) -> dict:
    """Every figure of one comparison from aligned (S, Q) outcome matrices (unadjusted)."""
    d = a - b
    result = crossed_mean(d)
    low, high = result.interval(config.confidence)
    n10, n01 = int(np.sum(d > 0)), int(np.sum(d < 0))
    heterogeneity = seed_heterogeneity(list(d))
    components = Components.from_crossed(result)
    return {
        "n_seeds": d.shape[0],
        "n_queries": d.shape[1],
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
        "var_seed": components.seed,
        "var_query": components.query,
        "var_resid": components.resid,
        "seed_covered": result.seed_covered,
        "n10": n10,
        "n01": n01,
        "discordance": (n10 + n01) / d.size,
        "p_pooled": sign_flip_test(d.ravel(), config.n_permutations, rng).pvalue,
        "p_heterogeneity": heterogeneity.pvalue,
        "cohens_h": cohens_h(float(a.mean()), float(b.mean())),
        "odds_ratio": discordant_odds_ratio(n10, n01),
    }


def compare_pair(
    sweep: SweepData,
    loader: PerQueryLoader,
    cell: str,
    baseline: str,
    choice: StopChoice | None,
    config: ReportConfig,
    rng: np.random.Generator,
    notes: list[str],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Rows of the comparison and McNemar tables for one cell against its baseline, at every shared stop point."""
    metrics = sweep.metrics
    mine, theirs = metrics[metrics["cell"] == cell], metrics[metrics["cell"] == baseline]
    rows, mcnemar_rows = [], []
    for stop in sorted(set(mine[STOP]) & set(theirs[STOP])):
        a_runs = mine[mine[STOP] == stop].set_index("seed", drop=False)
        b_runs = theirs[theirs[STOP] == stop].set_index("seed", drop=False)
        seeds = sorted(set(a_runs.index) & set(b_runs.index))
        unpaired = len(a_runs) + len(b_runs) - 2 * len(seeds)
        if unpaired:
            notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: {unpaired} run(s) without a same-seed partner")
        if not seeds:
            continue
        _check_same_data(sweep, a_runs, b_runs, seeds, notes)
        role = (
            "zero-shot" if stop == 0 else ("primary" if choice is not None and stop == choice.stop else "exploratory")
        )
        row: dict[str, object] = {"cell": cell, "baseline": baseline, STOP: stop, "role": role}
        row["corpus_size"] = float(a_runs["corpus_size"].min())
        outcomes = aligned_outcomes(loader, a_runs, b_runs, seeds, notes)
        if outcomes is not None and outcomes[0].shape[1] < 2:
            notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: fewer than 2 shared queries; no paired test")
            outcomes = None
        if outcomes is None:
            notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: per-query tables missing; no paired test")
            row.update(n_seeds=len(seeds), mean_cell=float(a_runs[METRIC].mean()))
            row.update(mean_baseline=float(b_runs[METRIC].mean()), p_crossed=np.nan)
            row["diff"] = row["mean_cell"] - row["mean_baseline"]
            rows.append(row)
            continue
        a, b = outcomes
        row.update(paired_statistics(a, b, config, rng))
        if role == "zero-shot":
            row.update(p_crossed=np.nan, p_pooled=np.nan)  # one network in both arms: listed, not tested
        rows.append(row)
        for seed, a_s, b_s in zip(seeds, a, b, strict=True):
            n10, n01 = int(np.sum(a_s > b_s)), int(np.sum(a_s < b_s))
            mcnemar_rows.append(
                {"cell": cell, "baseline": baseline, STOP: stop, "role": role, "seed": seed}
                | {"n_pairs": int(a_s.size), "n10": n10, "n01": n01}
            )
    return rows, mcnemar_rows


def _family(table: pd.DataFrame, config: ReportConfig) -> pd.DataFrame:
    """Holm/BH over the primary rows, the family-adjusted interval and MDE, the verdicts."""
    primary = (table["role"] == "primary") & np.isfinite(table["p_crossed"].astype(float))
    m = int(primary.sum())
    table["family_size"] = m
    for column in ("p_crossed_holm", "p_crossed_bh", "ci_adj_low", "ci_adj_high", "mde", "mde_level"):
        table[column] = np.nan
    if m:
        p = table.loc[primary, "p_crossed"].to_numpy(dtype=np.float64)
        table.loc[primary, "p_crossed_holm"] = holm(p)
        table.loc[primary, "p_crossed_bh"] = benjamini_hochberg(p)
    for i, row in table.iterrows():
        if row["role"] == "zero-shot" or not np.isfinite(float(row.get("var_resid", np.nan))):
            continue
        level = config.alpha / m if primary[i] else config.alpha
        seeds, queries = int(row["n_seeds"]), int(row["n_queries"])
        components = Components(float(row["var_seed"]), float(row["var_query"]), float(row["var_resid"]))
        table.loc[i, "mde_level"] = level
        if seeds >= 2:
            table.loc[i, "mde"] = components.mde(seeds, queries, level, config.power)
        if primary[i]:
            # The interval at the verdict's level: Bonferroni over the family (simultaneous coverage 1 - alpha).
            stages = (np.float64(row["v_seed_stage"]), np.float64(row["v_query_stage"]))
            half = float(cochran_cox_critical(*stages, seeds, queries, level)) * float(row["se"])
            table.loc[i, "ci_adj_low"] = float(row["diff"]) - half
            table.loc[i, "ci_adj_high"] = float(row["diff"]) + half
    table["verdict"] = [
        classify(float(r["p_crossed"]), float(r["p_crossed_holm"]), config.alpha)
        if r["role"] == "primary"
        else r["role"]
        for r in table.to_dict(orient="records")
    ]
    return table


def compare_all(
    sweep: SweepData,
    loader: PerQueryLoader,
    pairs: dict[str, str],
    choices: dict[str, StopChoice | None],
    config: ReportConfig,
    rng: np.random.Generator,
    notes: list[str],
) -> Comparisons:
    """Every cell against its baseline; the primary family is one row per cell at its chosen stop point."""
    rows, mcnemar_rows = [], []
    for cell in sorted(pairs):
        if choices.get(cell) is None:
            notes.append(f"cell {cell}: no trained stop point shared with its baseline (or not report.stop)")
        cell_rows, cell_mcnemar = compare_pair(sweep, loader, cell, pairs[cell], choices.get(cell), config, rng, notes)
        rows.extend(cell_rows)
        mcnemar_rows.extend(cell_mcnemar)
    table = pd.DataFrame(rows).reindex(columns=ROW_COLUMNS) if rows else pd.DataFrame(columns=ROW_COLUMNS)
    columns = ["cell", "baseline", STOP, "role", "seed", "n_pairs", "n10", "n01"]
    mcnemar = pd.DataFrame(mcnemar_rows, columns=columns)
    mcnemar["p_mcnemar"] = mcnemar_exact(mcnemar["n10"].to_numpy(), mcnemar["n01"].to_numpy()) if len(mcnemar) else []
    # McNemar's family: the seeds of the primary rows (secondary test; other rows stay unadjusted).
    mcnemar["p_mcnemar_holm"] = np.nan
    primary = (mcnemar["role"] == "primary").to_numpy()
    if primary.any():
        mcnemar.loc[primary, "p_mcnemar_holm"] = holm(mcnemar.loc[primary, "p_mcnemar"].to_numpy(dtype=np.float64))
    if len(table):
        table = _family(table, config)
    return Comparisons(table, mcnemar)
