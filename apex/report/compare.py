"""Each cell against its baseline at every shared stop point, on rank@1.

Pairing: runs pair by seed (same seed in both arms), queries pair by query_id (inner join of the two per-query
tables). For paired seed s the per-query difference is d = a - b in {-1, 0, 1}. Reported per comparison:

- diff: mean over paired seeds of mean(d) (= cell rank@1 - baseline rank@1), with a hierarchical-bootstrap interval
  that resamples the same seeds and queries for both arms (it resamples the pairs);
- exact McNemar per seed, the sign-flip permutation test over all (seed, query) pairs (the primary test), and the
  seed-level paired t-test on the logged per-seed rank@1 (low power with few seeds);
- effect sizes (Cohen's h, odds ratio of discordant pairs) and minimum detectable effects (apex.report.power);
- Holm and Benjamini-Hochberg adjusted p-values, each family being every comparison of that test in the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.bootstrap import Interval, percentile_interval
from apex.report.collect import STOP, PerQueryLoader, SweepData
from apex.report.config import ReportConfig
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import (
    cohens_h,
    discordant_counts,
    discordant_odds_ratio,
    mcnemar_exact,
    paired_t_test,
    sign_flip_test,
)
from apex.report.power import mde_paired_proportions, mde_paired_t

log = logging.getLogger("apex.report")

METRIC = "rank_at_1"


@dataclass
class Comparisons:
    table: pd.DataFrame  # one row per (cell, stop_fraction)
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)


def _paired_outcomes(
    loader: PerQueryLoader, cell_row: pd.Series, base_row: pd.Series, notes: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Aligned rank@1 outcomes (a, b) of one seed's two runs, joined on query_id; None if a table is missing."""
    a_table = loader.load(cell_row["run_id"], int(cell_row["step"]))
    b_table = loader.load(base_row["run_id"], int(base_row["step"]))
    if a_table is None or b_table is None:
        return None
    joined = a_table.merge(b_table, on="query_id", suffixes=("_a", "_b"), validate="one_to_one")
    dropped = len(a_table) + len(b_table) - 2 * len(joined)
    if dropped:
        notes.append(
            f"runs {cell_row['run_id']} / {base_row['run_id']} step {int(cell_row['step'])}: "
            f"{dropped} query row(s) without a partner were left out of the pairing"
        )
    return (joined["gold_rank_a"].to_numpy() == 1).astype(np.float64), (joined["gold_rank_b"].to_numpy() == 1).astype(
        np.float64
    )


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
        groups, a_all, b_all, complete = [], [], [], True
        for seed in seeds:
            outcomes = _paired_outcomes(loader, a_runs.loc[seed], b_runs.loc[seed], notes)
            if outcomes is None or outcomes[0].size == 0:
                complete = False
                continue
            a, b = outcomes
            n10, n01 = discordant_counts(a, b)
            mcnemar_rows.append(
                {"cell": cell, "baseline": baseline, STOP: stop, "seed": seed, "n_pairs": a.size, "n10": n10, "n01": n01}
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
    groups: list[np.ndarray], a_all: list[np.ndarray], b_all: list[np.ndarray], config: ReportConfig, rng: np.random.Generator
) -> dict[str, object]:
    pairs = np.concatenate(groups)
    n10, n01 = int(np.sum(pairs > 0)), int(np.sum(pairs < 0))
    interval = percentile_interval(groups, config.n_boot, config.confidence, rng)
    p_a = float(np.mean([a.mean() for a in a_all]))
    p_b = float(np.mean([b.mean() for b in b_all]))
    discordance = (n10 + n01) / pairs.size
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
    return Comparisons(table, mcnemar)
