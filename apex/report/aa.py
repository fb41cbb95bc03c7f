"""Built-in A/A check: a baseline with >= 6 seeds is split into two halves that run the same recipe, and the primary
test compares them. Both halves are the same configuration, so every rejection is a false positive: users see the
test's false-positive behaviour on their own data (their own seed-to-seed and query-level variation).

Seeds are sorted; each half holds k = floor(S / 2) seeds, paired in order (seed i of half A with seed i of half B).
The first split is the first k seeds against the next k; up to MAX_SPLITS further splits are drawn at random from
the others (mirror images excluded). The splits share seeds, so their rejections are not independent: about
alpha × splits rejections are expected from a test that holds its level, and many more say the test is fooled.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from apex.report.collect import STOP, PerQueryLoader, SweepData, clusters_of, per_query_values
from apex.report.config import ReportConfig
from apex.report.crossed import crossed_mean

MIN_SEEDS = 6
MAX_SPLITS = 20
COLUMNS = ["cell", STOP, "split", "seeds_a", "seeds_b", "diff", "ci_low", "ci_high", "p_crossed", "rejected"]


def half_splits(seeds: list[int], rng: np.random.Generator, max_splits: int = MAX_SPLITS) -> list[tuple]:
    """(half A, half B) seed tuples: the first k vs the next k, then random others without mirror images."""
    ordered = sorted(seeds)
    k = len(ordered) // 2
    used = ordered[: 2 * k]
    first = (tuple(used[:k]), tuple(used[k:]))
    others = [c for c in itertools.combinations(used, k) if used[0] in c and c != first[0]]
    picks = rng.permutation(len(others))[: max(0, max_splits - 1)] if others else []
    splits = [first]
    for i in sorted(int(p) for p in picks):
        half = others[i]
        splits.append((half, tuple(s for s in used if s not in half)))
    return splits


def aa_check(
    sweep: SweepData,
    loader: PerQueryLoader,
    baselines: list[str],
    stops: pd.DataFrame,
    config: ReportConfig,
    rng: np.random.Generator,
    metric: str = "rank_at_1",
) -> pd.DataFrame:
    """One row per split of every baseline cell with >= MIN_SEEDS seeds at its displayed stop point."""
    rows = []
    stop_of = stops.set_index("cell")[STOP].to_dict()
    for cell in baselines:
        runs = sweep.metrics[(sweep.metrics["cell"] == cell) & (sweep.metrics[STOP] == stop_of.get(cell, -1.0))]
        if runs["seed"].nunique() < MIN_SEEDS:
            continue
        tables = {int(r.seed): loader.load(r.run_id, int(r.step)) for r in runs.itertuples()}
        if any(t is None for t in tables.values()):
            continue
        shared = set.intersection(*(set(t["query_id"]) for t in tables.values()))
        outcomes = {s: per_query_values(t[t["query_id"].isin(shared)])[metric] for s, t in tables.items()}
        first = next(iter(tables.values()))
        clusters = clusters_of(first[first["query_id"].isin(shared)])
        for i, (half_a, half_b) in enumerate(half_splits(list(outcomes), rng)):
            d = np.stack([outcomes[a] - outcomes[b] for a, b in zip(half_a, half_b, strict=True)])
            result = crossed_mean(d, clusters)
            low, high = result.interval(config.confidence)
            p = float(result.pvalue())
            rows.append(
                {"cell": cell, STOP: stop_of[cell], "split": i, "seeds_a": list(half_a), "seeds_b": list(half_b)}
                | {"diff": float(result.estimate), "ci_low": float(low), "ci_high": float(high), "p_crossed": p}
                | {"rejected": p <= config.alpha}
            )
    return pd.DataFrame(rows, columns=COLUMNS)
