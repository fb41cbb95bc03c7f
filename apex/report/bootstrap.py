"""Hierarchical (two-stage) bootstrap of a mean over seeds and queries.

A sweep cell has S seeds; seed s has a vector x_s of n_s per-query values (0/1 for rank@1, 1/rank for MRR, or a
paired difference a - b). The estimate is the mean over seeds of the per-seed means,

    theta = (1/S) * sum_s mean(x_s).

One bootstrap replicate draws S seeds with replacement, then for every drawn seed draws n_s of its queries with
replacement, and recomputes theta. Both sources of noise -- which seeds were trained and which queries were asked --
enter the interval. With one seed it is exactly the plain (query) bootstrap.

Vectorised without materialising B x S x n indices: the mean of n_s values drawn with replacement depends only on
how often each *distinct* value was drawn, and those counts are Multinomial(n_s, frequencies / n_s). Per-query
metrics take few distinct values (rank@1: 2; a paired difference: 3; MRR@10: 11), so a replicate costs O(k) for k
distinct values. The replicate distribution is identical to index resampling, not an approximation.

The variance of theta* has a closed form used by the tests: with m_s the seed means and v_s the seed variances
(ddof=0),  Var(theta*) = [ (1/S) sum_s (m_s - mean m)^2 + (1/S) sum_s v_s / n_s ] / S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bound on the multinomial count matrix built at once (rows x distinct values), to keep memory flat.
_MAX_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_boot: int

    @classmethod
    def empty(cls) -> Interval:
        return cls(float("nan"), float("nan"), float("nan"), 0)


def _as_groups(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if not arrays:
        raise ValueError("hierarchical bootstrap needs at least one seed")
    for i, a in enumerate(arrays):
        if a.size == 0:
            raise ValueError(f"seed group {i} has no queries")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"seed group {i} holds non-finite values")
    return arrays


def resampled_group_means(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` bootstrap means of `values` (each the mean of len(values) draws with replacement), shape (size,)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    distinct, counts = np.unique(values, return_counts=True)  # shapes (k,), (k,)
    if distinct.size == 1:
        return np.full(size, distinct[0])
    pvals = counts / n
    out = np.empty(size, dtype=np.float64)
    rows = max(1, _MAX_CELLS // distinct.size)
    for start in range(0, size, rows):
        stop = min(size, start + rows)
        draws = rng.multinomial(n, pvals, size=stop - start)  # (rows, k) counts summing to n
        out[start:stop] = draws @ distinct / n
    return out


def hierarchical_bootstrap(groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates of the mean of seed means, shape (n_boot,): resample seeds, then queries within each seed."""
    arrays = _as_groups(groups)
    n_seeds = len(arrays)
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # (B, S): which seed fills each slot
    seed_means = np.empty((n_boot, n_seeds), dtype=np.float64)
    for s, values in enumerate(arrays):
        slots = picks == s  # every slot where seed s was drawn gets its own query resample
        seed_means[slots] = resampled_group_means(values, int(slots.sum()), rng)
    return seed_means.mean(axis=1)


def percentile_interval(
    groups: Sequence[np.ndarray], n_boot: int, confidence: float, rng: np.random.Generator
) -> Interval:
    """Mean of seed means with its percentile interval from `hierarchical_bootstrap`."""
    arrays = _as_groups(groups)
    estimate = float(np.mean([a.mean() for a in arrays]))
    replicates = hierarchical_bootstrap(arrays, n_boot, rng)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), n_boot)


def analytic_bootstrap_variance(groups: Sequence[np.ndarray]) -> float:
    """The exact variance of `hierarchical_bootstrap`'s replicates (see the module docstring)."""
    arrays = _as_groups(groups)
    means = np.array([a.mean() for a in arrays])
    within = np.array([a.var() / a.size for a in arrays])
    return float((means.var() + within.mean()) / len(arrays))
