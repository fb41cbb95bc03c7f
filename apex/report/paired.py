"""Paired tests of two systems on the same queries (and seeds), plus effect sizes.

Notation for one pair of binary outcomes (a = system, b = baseline, 1 = gold document ranked first):
n10 = #(a=1, b=0), n01 = #(a=0, b=1) -- the discordant pairs; concordant pairs carry no information about a
difference.

- Exact McNemar: under H0 each discordant pair is equally likely to favour either system, so
  n10 ~ Binomial(n10 + n01, 1/2); two-sided p = min(1, 2 * P(X <= min(n10, n01))), which is what
  `scipy.stats.binomtest(n10, n10 + n01, 0.5)` returns (the binomial with p = 1/2 is symmetric).
- Sign-flip permutation test: under H0 each paired difference d_i = a_i - b_i is symmetric about 0, so flipping
  its sign leaves the distribution unchanged. The statistic is mean(d); the null distribution flips every d_i
  independently. Flips of the pairs sharing one |d| value v only matter through how many turn positive, so one
  null replicate is sum_v v * (2 * Binomial(m_v, 1/2) - m_v) / N -- the same distribution as flipping each pair,
  drawn in O(#distinct |d|). The p-value follows `scipy.stats.permutation_test`: (hits + 1) / (R + 1) per tail,
  two-sided = min(1, 2 * min(tails)).
- Seed heterogeneity (Cochran's Q): are the per-seed mean differences further apart than query sampling explains?
  Q = sum_s w_s (mean_s - mean_w)^2 with w_s = n_s / var_s(d) and mean_w the w-weighted mean; Q ~ chi2(S - 1)
  when every seed measures the same difference. A small p says training randomness moves the difference: the
  pooled McNemar and sign-flip tests treat the trained models as fixed, so they then overstate how sure we are
  about the *recipe*; the primary crossed test (apex.report.crossed) carries that variation.

These are the report's secondary tests: they answer "do *these* trained models differ on *these* queries?".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

# Relative tolerance when comparing null replicates with the observed statistic (as scipy does).
_TIE_RTOL = 1e-14
_MAX_CELLS = 4_000_000


def mcnemar_exact(n10: np.ndarray | int, n01: np.ndarray | int) -> np.ndarray:
    """Two-sided exact McNemar p-values, vectorised over arrays of discordant counts."""
    b = np.asarray(n10, dtype=np.int64)
    c = np.asarray(n01, dtype=np.int64)
    if np.any(b < 0) or np.any(c < 0):
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    p = np.minimum(1.0, 2.0 * stats.binom.cdf(np.minimum(b, c), np.maximum(n, 1), 0.5))
    return np.where(n == 0, 1.0, p)


def discordant_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(n10, n01) for two aligned 0/1 outcome vectors."""
    a = np.asarray(a).astype(bool)
    b = np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"outcome vectors differ in shape: {a.shape} vs {b.shape}")
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


@dataclass(frozen=True)
class SignFlipResult:
    statistic: float  # mean paired difference
    pvalue: float  # two-sided
    n_resamples: int
    null: np.ndarray  # (n_resamples,) null replicates of the statistic


def _flip_statistic(levels: np.ndarray, positives: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    # levels (k,), positives (..., k), counts (k,): sum_v v * (pos_v - neg_v) / N, same arithmetic for all.
    return ((2 * positives - counts) * levels).sum(axis=-1) / n


def sign_flip_test(differences: np.ndarray, n_resamples: int, rng: np.random.Generator) -> SignFlipResult:
    """Two-sided paired permutation (sign-flip) test of mean(differences) == 0."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("sign-flip test needs at least one pair")
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences must be finite")
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return SignFlipResult(0.0, 1.0, 0, np.zeros(0))
    levels, inverse = np.unique(np.abs(nonzero), return_inverse=True)  # (k,), (n_nonzero,)
    counts = np.bincount(inverse, minlength=levels.size)
    observed_pos = np.bincount(inverse, weights=(nonzero > 0).astype(np.float64), minlength=levels.size)
    observed = float(_flip_statistic(levels, observed_pos, counts, d.size))
    null = np.empty(n_resamples)
    rows = max(1, _MAX_CELLS // levels.size)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        positives = rng.binomial(counts, 0.5, size=(stop - start, levels.size))
        null[start:stop] = _flip_statistic(levels, positives, counts, d.size)
    gamma = abs(observed) * _TIE_RTOL
    p_less = (np.count_nonzero(null <= observed + gamma) + 1) / (n_resamples + 1)
    p_greater = (np.count_nonzero(null >= observed - gamma) + 1) / (n_resamples + 1)
    return SignFlipResult(observed, float(min(1.0, 2.0 * min(p_less, p_greater))), n_resamples, null)


def cohens_h(p_a: float, p_b: float) -> float:
    """Cohen's h = 2 asin(sqrt(p_a)) - 2 asin(sqrt(p_b)): a difference of proportions on a variance-stable scale."""
    return float(2.0 * np.arcsin(np.sqrt(p_a)) - 2.0 * np.arcsin(np.sqrt(p_b)))


def discordant_odds_ratio(n10: int, n01: int) -> float:
    """n10 / n01, the conditional (McNemar) odds ratio; 0.5 is added to both when either is zero (Haldane)."""
    if n10 == 0 and n01 == 0:
        return float("nan")
    if n10 == 0 or n01 == 0:
        return (n10 + 0.5) / (n01 + 0.5)
    return n10 / n01


@dataclass(frozen=True)
class HeterogeneityResult:
    statistic: float  # Cochran's Q
    pvalue: float
    n_seeds: int


def seed_heterogeneity(groups: list[np.ndarray]) -> HeterogeneityResult:
    """Cochran's Q over per-seed paired differences; NaN with < 2 seeds or a seed without variation."""
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if len(arrays) < 2 or any(a.size < 2 for a in arrays):
        return HeterogeneityResult(float("nan"), float("nan"), len(arrays))
    means = np.array([a.mean() for a in arrays])
    variances = np.array([a.var(ddof=1) / a.size for a in arrays])  # squared standard error of each seed mean
    if np.any(variances <= 0):
        return HeterogeneityResult(float("nan"), float("nan"), len(arrays))
    weights = 1.0 / variances
    pooled = float(np.sum(weights * means) / np.sum(weights))
    q = float(np.sum(weights * (means - pooled) ** 2))
    return HeterogeneityResult(q, float(stats.chi2.sf(q, len(arrays) - 1)), len(arrays))
