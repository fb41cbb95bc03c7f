"""Each cell against its baseline at every shared stop point, on rank@1.

Pairing: runs pair by seed (same seed in both arms), queries pair by query_id (inner join of the two per-query
tables). For paired seed s the per-query difference is d = a - b in {-1, 0, 1}. Reported per comparison:

- diff: mean over paired seeds of mean(d) (= cell rank@1 - baseline rank@1), with a hierarchical-bootstrap interval
  that resamples the same seeds and queries for both arms (it resamples the pairs);
- exact McNemar per seed, the sign-flip permutation test over all (seed, query) pairs (the primary test), and the
  seed-level paired t-test on the logged per-seed rank@1 (low power with few seeds);
- effect sizes (Cohen's h, odds ratio of discordant pairs) and minimum detectable effects (apex.report.power);
- Cochran's Q for seed heterogeneity (does training randomness move the difference more than query noise?);
- Holm and Benjamini-Hochberg adjusted p-values, each family being every comparison of that test in the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.bootstrap import Interval, percentile_interval
from apex.report.collect import STOP, PerQueryLoader, SweepData, per_query_values
from apex.report.config import ReportConfig
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import (
    cohens_h,
    discordant_counts,
    discordant_odds_ratio,
    mcnemar_exact,
    paired_t_test,
    seed_heterogeneity,
    sign_flip_test,
)
from apex.report.power import mde_paired_proportions, mde_paired_t

log = logging.getLogger("apex.report")

METRIC = "rank_at_1"


VERDICTS = {
    "robust": "better or worse across seeds: pooled test (Holm), seed-and-query interval and seed-level t-test (Holm)",
    "consistent": "pooled test (Holm) and seed-and-query interval agree and seeds do not disagree; t-test too weak",
    "unstable": "these trained models differ on these queries, but seeds vary as much as the effect",
    "none": "no significant difference after correction",
    "untested": "per-query tables missing: no paired test",
}


def classify(row: dict[str, object], alpha: float) -> str:
    """One of VERDICTS' keys for a comparison row (after the Holm columns exist).

    The pooled tests treat the trained models as fixed, so a recipe-level claim also needs the interval that
    resamples seeds to exclude zero and no sign of excess seed variation (tests/test_report_calibration.py measures
    how often each rule is fooled by seed-to-seed variation).
    """
    p_pooled = float(row["p_perm_holm"])
    if not np.isfinite(p_pooled):
        return "untested"
    if p_pooled > alpha:
        return "none"
    low, high = float(row["ci_low"]), float(row["ci_high"])
    interval_clear = np.isfinite(low) and not (low <= 0.0 <= high)
    heterogeneous = float(row.get("p_heterogeneity", np.nan)) <= alpha
    if not interval_clear or heterogeneous:
        return "unstable"
    return "robust" if float(row.get("p_ttest_holm", np.nan)) <= alpha else "consistent"


@dataclass
class Comparisons:
    table: pd.DataFrame  # one row per (cell, stop_fraction)
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)


def _paired_outcomes(
    loader: PerQueryLoader, cell_row: pd.Series, base_row: pd.Series, notes: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Aligned rank@1 outcomes (a, b) of one seed's two runs, paired on query_id; None if a table is missing."""
    a_table = loader.load(cell_row["run_id"], int(cell_row["step"]))
    b_table = loader.load(base_row["run_id"], int(base_row["step"]))
    if a_table is None or b_table is None:
        return None
    # Both tables are sorted by unique query_id, so keeping the shared ids aligns them row by row.
    shared_a = a_table["query_id"].isin(b_table["query_id"])
    shared_b = b_table["query_id"].isin(a_table["query_id"])
    dropped = int((~shared_a).sum() + (~shared_b).sum())
    a_table, b_table = a_table[shared_a], b_table[shared_b]
    if dropped:
        notes.append(
            f"runs {cell_row['run_id']} / {base_row['run_id']} step {int(cell_row['step'])}: "
            f"{dropped} query row(s) without a partner were left out of the pairing"
        )
    if not np.array_equal(a_table["query_id"].to_numpy(), b_table["query_id"].to_numpy()):
        raise AssertionError("per-query tables must be sorted by query_id")  # parse_per_query guarantees it
    return per_query_values(a_table)[METRIC], per_query_values(b_table)[METRIC]


def _check_same_data(
    sweep: SweepData, a_runs: pd.DataFrame, b_runs: pd.DataFrame, seeds: list[int], notes: list[str]
) -> None:
    """Note paired runs whose dataset fingerprints differ: their queries may share ids but not content."""
    fingerprint = sweep.runs.set_index("run_id")["dataset_fingerprint"]
    for seed in seeds:
        a_id, b_id = a_runs.loc[seed, "run_id"], b_runs.loc[seed, "run_id"]
        if fingerprint.get(a_id) != fingerprint.get(b_id):
            notes.append(f"runs {a_id} / {b_id} (seed {seed}) carry different apex.dataset_fingerprint tags")


def compare_pair(
    sweep: SweepData,
    loader: PerQueryLoader,
    cell: str,
    baseline: str,
    config: ReportConfig,
    rng: np.random.Generator,
    notes: list[str],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Rows of the comparison and McNemar tables for one cell against its baseline, at every shared stop point."""
    metrics = sweep.metrics
    mine, theirs = metrics[metrics["cell"] == cell], metrics[metrics["cell"] == baseline]
    rows, mcnemar_rows = [], []
    for stop in sorted(set(mine[STOP]) & set(theirs[STOP])):
        a_runs = mine[mine[STOP] == stop].set_index("seed")
        b_runs = theirs[theirs[STOP] == stop].set_index("seed")
        seeds = sorted(set(a_runs.index) & set(b_runs.index))
        unpaired = len(a_runs) + len(b_runs) - 2 * len(seeds)
        if unpaired:
            notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: {unpaired} run(s) without a same-seed partner")
        if not seeds:
            continue
        _check_same_data(sweep, a_runs, b_runs, seeds, notes)
        groups, a_all, b_all, complete = [], [], [], True
        for seed in seeds:
            outcomes = _paired_outcomes(loader, a_runs.loc[seed], b_runs.loc[seed], notes)
            if outcomes is None or outcomes[0].size == 0:
                complete = False
                continue
            a, b = outcomes
            n10, n01 = discordant_counts(a, b)
            mcnemar_rows.append(
                {
                    "cell": cell,
                    "baseline": baseline,
                    STOP: stop,
                    "seed": seed,
                    "n_pairs": a.size,
                    "n10": n10,
                    "n01": n01,
                }
            )
            groups.append(a - b)
            a_all.append(a)
            b_all.append(b)
        t_test = paired_t_test(a_runs.loc[seeds, METRIC].to_numpy(), b_runs.loc[seeds, METRIC].to_numpy())
        row: dict[str, object] = {
            "cell": cell,
            "baseline": baseline,
            STOP: stop,
            "n_seeds": len(seeds),
            "mean_cell": float(a_runs.loc[seeds, METRIC].mean()),
            "mean_baseline": float(b_runs.loc[seeds, METRIC].mean()),
            "corpus_size": float(a_runs["corpus_size"].min()),
            "t_statistic": t_test.statistic,
            "p_ttest": t_test.pvalue,
            "sd_seed_diff": t_test.sd_difference,
            "mde_seeds": mde_paired_t(len(seeds), t_test.sd_difference, config.alpha, config.power),
        }
        if complete:
            row.update(_pooled(groups, a_all, b_all, config, rng))
        else:
            notes.append(f"cell {cell} vs {baseline} at stop {stop:g}: per-query tables missing; pooled tests skipped")
            row.update(_pooled_missing(t_test.mean_difference))
        rows.append(row)
    return rows, mcnemar_rows


def _pooled(
    groups: list[np.ndarray],
    a_all: list[np.ndarray],
    b_all: list[np.ndarray],
    config: ReportConfig,
    rng: np.random.Generator,
) -> dict[str, object]:
    pairs = np.concatenate(groups)
    n10, n01 = int(np.sum(pairs > 0)), int(np.sum(pairs < 0))
    interval = percentile_interval(groups, config.n_boot, config.confidence, rng)
    p_a = float(np.mean([a.mean() for a in a_all]))
    p_b = float(np.mean([b.mean() for b in b_all]))
    discordance = (n10 + n01) / pairs.size
    heterogeneity = seed_heterogeneity(groups)
    return {
        "n_pairs": int(pairs.size),
        "n_queries": int(min(g.size for g in groups)),
        "diff": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n10": n10,
        "n01": n01,
        "discordance": discordance,
        "p_perm": sign_flip_test(pairs, config.n_permutations, rng).pvalue,
        "cohens_h": cohens_h(p_a, p_b),
        "odds_ratio": discordant_odds_ratio(n10, n01),
        "mde_pairs": mde_paired_proportions(pairs.size, discordance, config.alpha, config.power),
        "q_heterogeneity": heterogeneity.statistic,
        "p_heterogeneity": heterogeneity.pvalue,
    }


def _pooled_missing(seed_diff: float) -> dict[str, object]:
    empty = Interval.empty()
    nan = float("nan")
    return {
        "n_pairs": 0,
        "n_queries": nan,
        "diff": seed_diff,
        "ci_low": empty.low,
        "ci_high": empty.high,
        "n10": 0,
        "n01": 0,
        "discordance": nan,
        "p_perm": nan,
        "cohens_h": nan,
        "odds_ratio": nan,
        "mde_pairs": nan,
        "q_heterogeneity": nan,
        "p_heterogeneity": nan,
    }


def compare_all(
    sweep: SweepData,
    loader: PerQueryLoader,
    pairs: dict[str, str],
    config: ReportConfig,
    rng: np.random.Generator,
    notes: list[str],
) -> Comparisons:
    """Every cell against its baseline, then Holm and BH over each test's family of p-values."""
    rows, mcnemar_rows = [], []
    for cell in sorted(pairs):
        cell_rows, cell_mcnemar = compare_pair(sweep, loader, cell, pairs[cell], config, rng, notes)
        rows.extend(cell_rows)
        mcnemar_rows.extend(cell_mcnemar)
    table = pd.DataFrame(rows)
    mcnemar = pd.DataFrame(mcnemar_rows, columns=["cell", "baseline", STOP, "seed", "n_pairs", "n10", "n01"])
    mcnemar["p_mcnemar"] = mcnemar_exact(mcnemar["n10"].to_numpy(), mcnemar["n01"].to_numpy()) if len(mcnemar) else []
    for frame, column in ((table, "p_perm"), (table, "p_ttest"), (mcnemar, "p_mcnemar")):
        if len(frame):
            frame[f"{column}_holm"] = holm(frame[column].to_numpy(dtype=np.float64))
            frame[f"{column}_bh"] = benjamini_hochberg(frame[column].to_numpy(dtype=np.float64))
        else:
            frame[f"{column}_holm"] = []
            frame[f"{column}_bh"] = []
    if len(table) and len(mcnemar):
        # How many seeds of each comparison McNemar finds significant after Holm over all (comparison, seed) tests.
        significant = (mcnemar["p_mcnemar_holm"] <= config.alpha).groupby([mcnemar["cell"], mcnemar[STOP]]).sum()
        keys = pd.MultiIndex.from_frame(table[["cell", STOP]])
        table["mcnemar_seeds_significant_holm"] = significant.reindex(keys).fillna(0).astype(int).to_numpy()
    elif len(table):
        table["mcnemar_seeds_significant_holm"] = 0
    if len(table):
        table["verdict"] = [classify(row, config.alpha) for row in table.to_dict(orient="records")]
    return Comparisons(table, mcnemar)
