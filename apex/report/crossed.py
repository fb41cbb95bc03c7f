"""Inference for a mean over two crossed random factors: training seeds (models) and queries.

A comparison of two arms gives a matrix x of shape (S, Q): x[s, q] is the per-query difference (arm A − arm B, in
{-1, 0, 1} for rank@1) of the seed-s models on query q. Every seed and both arms see the same Q queries, so seeds
and queries are *crossed*: the estimate mean(x) carries noise from which models were trained and from which queries
were asked, and the query part is shared by every seed. Any x[s, q] = f(seed s, query q, noise) with independent
seeds and queries splits (Hoeffding / two-way ANOVA) into

    x[s, q] = mu + a_s + b_q + e_sq,    Var(a) = var_seed, Var(b) = var_query, Var(e) = var_resid,

so  Var(mean x) = var_seed / S + var_query / Q + var_resid / (S Q).  With the two-way mean squares

    MS_seed  = Q * sum_s (xbar_s. - xbar)^2 / (S - 1)                 E = Q var_seed + var_resid
    MS_query = S * sum_q (xbar_.q - xbar)^2 / (Q - 1)                 E = S var_query + var_resid
    MS_resid = sum (x - xbar_s. - xbar_.q + xbar)^2 / ((S-1)(Q-1))    E = var_resid

the unbiased moment estimate of Var(mean x) is (MS_seed − MS_resid + MS_query) / (S Q) (the balanced crossed
mixed model). We split it into two stages with known degrees of freedom:

    seed stage  V_s = MS_seed / (S Q)                   = (sample variance of the S per-seed means) / S, S − 1 df
    query stage V_q = max(MS_query − MS_resid, 0) / (S Q) = estimated var_query / Q,                 Q − 1 df

V_s is exactly what the seed-level paired t-test uses; V_q is what it misses because every seed answers the same
queries (their per-query arm effects do not average out across seeds). V_s holds the query noise of each seed's
mean *in expectation*; one sweep's estimate, with S − 1 df, falls below it in more than half of 2-3-seed sweeps
(where nearly every small-seed false positive happens), which is why the seed stage keeps S − 1 df. The
statistic t = mean(x) / sqrt(V_s + V_q) is
compared with the Cochran–Cox critical value c = (V_s t_{1-α/2, S-1} + V_q t_{1-α/2, Q-1}) / (V_s + V_q); the
interval mean ± c · sqrt(V_s + V_q) is the set of values the test does not reject.

Why not Satterthwaite's degrees of freedom (or a crossed bootstrap)? With S = 3 the seed stage has 2 degrees of
freedom and nothing can tell a small model-to-model variance from none; Satterthwaite (a mixed model with estimated
df) then rejects 7–8% of A/A comparisons at α = 0.05 when models differ by 1–2 points, and a bootstrap over three
seeds is worse. Cochran–Cox is conservative by construction (it never uses more than S − 1 df for the seed stage
when that stage matters) and holds its level across benchmarks/calibration.py's grid; with three seeds a
difference needs t > 4.30 whenever training randomness dominates. A seed-level randomisation test cannot do better:
three seeds give 2^3 = 8 sign patterns, so its smallest two-sided p-value is 0.25.

With two seeds the critical value is t_{1-α/2, 1} whatever the stages' weights (see `cochran_cox_critical`). When
queries share relevant documents the query stage is cluster-robust (apex.report.clusters) with the effective number
of query units in place of Q. With one seed the model variance cannot be estimated: the test then covers query
sampling only (`seed_covered`
is False) and the report says so.

Everything is vectorised over leading axes: x of shape (..., S, Q) gives results of shape (...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from apex.report.clusters import QueryClusters

# Quantiles of the seed-stage estimate averaged over in `Components.power`.
_QUADRATURE = 256
# One-sided level of the upper confidence limits a pilot's variance components are planned at (Components.upper).
UPPER_LEVEL = 0.95


def cochran_cox_critical(
    var_seed_stage: np.ndarray, var_query_stage: np.ndarray, n_seeds: int, query_units: float, alpha: np.ndarray | float
) -> np.ndarray:
    """Two-sided critical value of the crossed test.

    S >= 3: Cochran–Cox, the variance-weighted mean of t_{1-alpha/2, S-1} and t_{1-alpha/2, U-1} (U = the query
    units: Q, or QueryClusters.effective_units). S = 2: the seed stage's own t_{1-alpha/2, 1} = 12.7 at alpha = 0.05,
    whatever the weights. With one degree of freedom the seed-stage estimate is below a tenth of its mean a quarter
    of the time, and the weighted value then drops to ~1.97: Cochran–Cox rejected up to 7.4% of A/A comparisons.
    t_{S-1} bounds every Welch–Satterthwaite critical value, so the 2-seed test is conservative (calibrated in
    benchmarks/calibration.py) and a third seed is the remedy the report names.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    t_seed = stats.t.ppf(1.0 - alpha / 2.0, max(n_seeds - 1, 1))
    t_query = stats.t.ppf(1.0 - alpha / 2.0, max(float(query_units) - 1.0, 1.0))
    total = var_seed_stage + var_query_stage
    if n_seeds == 2:
        return np.broadcast_to(np.maximum(t_seed, t_query), np.shape(total)) + 0.0 * total
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (var_seed_stage * t_seed + var_query_stage * t_query) / total, t_query)


@dataclass(frozen=True)
class Crossed:
    """Crossed seed × query inference for a mean (arrays of the leading shape; 0-d for one matrix)."""

    estimate: np.ndarray
    var_seed_stage: np.ndarray  # MS_seed / (S Q): spread of the per-seed means (S - 1 df)
    var_query_stage: np.ndarray  # (MS_query - MS_resid)+ / (S Q): shared per-query effects (Q - 1 df)
    var_seed: np.ndarray  # variance components of one (seed, query) value, truncated at 0
    var_query: np.ndarray
    var_resid: np.ndarray
    n_seeds: int
    n_queries: int
    query_units: float  # independent query units (Q, or fewer when queries share documents): df + 1 of the query stage

    @property
    def variance(self) -> np.ndarray:
        return self.var_seed_stage + self.var_query_stage

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def seed_covered(self) -> bool:
        """False with one seed: training randomness is not in the variance."""
        return self.n_seeds >= 2

    def critical(self, alpha: float) -> np.ndarray:
        return cochran_cox_critical(self.var_seed_stage, self.var_query_stage, self.n_seeds, self.query_units, alpha)

    def rejects(self, alpha: float, null: float = 0.0) -> np.ndarray:
        """The level-alpha two-sided test of mean == null (vectorised; no p-value needed)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(self.estimate - null) / self.se
        return np.where(self.variance > 0, t > self.critical(alpha), ~np.isclose(self.estimate, null, atol=1e-12))

    def pvalue(self, null: float = 0.0) -> np.ndarray:
        """Two-sided p: the smallest alpha at which `rejects` does (bisection on the monotone critical value)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(self.estimate - null) / self.se
        low = np.zeros(np.shape(t))
        high = np.ones(np.shape(t))
        for _ in range(60):  # critical(alpha) decreases in alpha: keep [low, high] bracketing the crossing
            mid = (low + high) / 2.0
            reject = t > self.critical(mid)
            high = np.where(reject, mid, high)
            low = np.where(reject, low, mid)
        p = np.where(self.variance > 0, high, np.where(np.isclose(self.estimate, null, atol=1e-12), 1.0, 0.0))
        return p if np.ndim(p) else float(p)

    def interval(self, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """The interval the test inverts: estimate ± critical(1 - confidence) · se (Bonferroni: 1 - alpha / m)."""
        half = self.critical(1.0 - confidence) * self.se
        return self.estimate - half, self.estimate + half


def mean_squares(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MS_seed, MS_query, MS_resid) of x (..., S, Q); MS_seed and MS_resid are 0 when S == 1."""
    x = np.asarray(x, dtype=np.float64)
    n_seeds, n_queries = x.shape[-2], x.shape[-1]
    grand = x.mean(axis=(-2, -1), keepdims=True)  # (..., 1, 1)
    rows = x.mean(axis=-1, keepdims=True) - grand  # (..., S, 1) seed effects
    cols = x.mean(axis=-2, keepdims=True) - grand  # (..., 1, Q) query effects
    ss_seed = n_queries * np.sum(rows**2, axis=(-2, -1))
    ss_query = n_seeds * np.sum(cols**2, axis=(-2, -1))
    ss_resid = np.sum((x - grand - rows - cols) ** 2, axis=(-2, -1))
    ms_query = ss_query / max(n_queries - 1, 1)
    if n_seeds < 2:
        zero = np.zeros_like(ms_query)
        return zero, ms_query, zero
    return ss_seed / (n_seeds - 1), ms_query, ss_resid / ((n_seeds - 1) * (n_queries - 1))


def crossed_mean(x: np.ndarray, clusters: QueryClusters | None = None) -> Crossed:
    """Crossed seed × query inference for mean(x) over the last two axes (see the module docstring).

    `clusters`: queries linked by shared relevant documents (apex.report.clusters); the query stage is then the
    cluster-robust one, with the effective number of query units as its degrees of freedom + 1.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 2:
        raise ValueError(f"need a (seeds, queries) matrix with at least 2 queries, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("per-query values must be finite")
    n_seeds, n_queries = x.shape[-2], x.shape[-1]
    ms_seed, ms_query, ms_resid = mean_squares(x)
    cells = n_seeds * n_queries
    units = float(n_queries)
    if clusters is not None and not clusters.trivial:
        if clusters.n_queries != n_queries:
            raise ValueError(f"clusters describe {clusters.n_queries} queries, the matrix has {n_queries}")
        cols = x.mean(axis=-2) - x.mean(axis=(-2, -1))[..., None]  # (..., Q) query deviations
        linked = clusters.quadratic(cols) / (n_queries * (n_queries - 1))  # b' L b / (Q (Q - 1))
        ms_query = np.maximum(linked * n_seeds * n_queries, 0.0)  # the MS_query the linked queries amount to
        units = clusters.effective_units
    if n_seeds < 2:
        # One model: nothing measures training randomness; the query stage is the whole paired query-level test.
        seed_stage, query_stage = np.zeros_like(ms_query), ms_query / cells
    else:
        seed_stage, query_stage = ms_seed / cells, np.maximum(ms_query - ms_resid, 0.0) / cells
    return Crossed(
        estimate=x.mean(axis=(-2, -1)),
        var_seed_stage=seed_stage,
        var_query_stage=query_stage,
        var_seed=np.maximum(ms_seed - ms_resid, 0.0) / n_queries,
        var_query=np.maximum(ms_query - ms_resid, 0.0) / n_seeds,
        var_resid=ms_resid,
        n_seeds=n_seeds,
        n_queries=n_queries,
        query_units=units,
    )


# --- planning: power and minimum detectable effect of the crossed test ---------------------------------------------


@dataclass(frozen=True)
class Components:
    """Variance components of one per-query difference of the primary metric: the planning inputs.

    `query` is per query, clustering included (the query stage is query / Q); `unit_share` = effective query units
    / queries (1 for independent queries), so a design of Q' queries has Q' · unit_share units (its df + 1).
    """

    seed: float  # model-to-model variance of the difference (training randomness)
    query: float  # per-query arm-effect variance (shared by every seed)
    resid: float  # seed × query noise (models disagreeing on a query)
    unit_share: float = 1.0

    @classmethod
    def from_crossed(cls, result: Crossed) -> Components:
        share = float(result.query_units) / result.n_queries
        return cls(float(result.var_seed), float(result.var_query), float(result.var_resid), share)

    @classmethod
    def upper(cls, result: Crossed, level: float = UPPER_LEVEL) -> Components:
        """The components at their one-sided `level` upper confidence limits (chi-square, normal mean squares).

        E[MS_seed] = Q var_seed + var_resid has S − 1 df, E[MS_query] = S var_query + var_resid has U − 1 (U query
        units): each mean square is raised to (df · MS) / chi2_{1-level, df} before the residual is subtracted. A
        3-seed pilot estimates the seed variance with 2 df (skewed, often 0): planning from the point estimate
        promised >= 80% power for designs whose true power was below 70% in almost half of realistic pilots.
        """
        n_seeds, n_queries = result.n_seeds, result.n_queries
        resid = float(result.var_resid)
        ms_seed = float(result.var_seed_stage) * n_seeds * n_queries
        ms_query = float(result.var_query_stage) * n_seeds * n_queries + resid
        df_seed, df_query = max(n_seeds - 1, 1), max(float(result.query_units) - 1.0, 1.0)
        seed_ucl = df_seed * ms_seed / stats.chi2.ppf(1.0 - level, df_seed)
        query_ucl = df_query * ms_query / stats.chi2.ppf(1.0 - level, df_query)
        seed = max(seed_ucl - resid, 0.0) / n_queries
        query = max(query_ucl - resid, 0.0) / n_seeds
        return cls(seed, query, resid, float(result.query_units) / n_queries)

    def stages(self, n_seeds: int, n_queries: int) -> tuple[float, float]:
        """Expected (seed-stage, query-stage) variances of the estimate for a sweep of n_seeds × n_queries.

        The expected seed stage holds each seed's query noise, resid / Q. The *estimated* seed stage of one sweep
        can fall below it (with 2-3 seeds it does in more than half of sweeps); `power` averages over that.
        """
        return (self.seed + self.resid / n_queries) / n_seeds, self.query / n_queries

    def power(self, n_seeds: int, n_queries: int, delta: float, alpha: float) -> float:
        """Promised power of the crossed test at a true difference delta.

        The estimate is N(delta, V) with V = V_s + V_q; the test's seed stage is estimated as V_s W with
        W ~ chi2(S - 1) / (S - 1) independent of the estimate (the query stage, with Q - 1 df, is taken as known).
        Power = E_W P(|estimate| > c(V_s W, V_q) sqrt(V_s W + V_q)), by quadrature over 256 quantiles of W: it
        carries the chance that a few seeds happen to agree, which a fixed-df formula misses.
        """
        if n_seeds < 2:
            raise ValueError("planning needs at least 2 seeds (one seed cannot measure training randomness)")
        seed_stage, query_stage = self.stages(n_seeds, n_queries)
        variance = seed_stage + query_stage
        if not variance > 0:
            return float("nan")
        w = stats.chi2.ppf((np.arange(_QUADRATURE) + 0.5) / _QUADRATURE, n_seeds - 1) / (n_seeds - 1)
        seed_hat = seed_stage * w  # (256,) possible estimated seed stages
        units = n_queries * self.unit_share
        threshold = cochran_cox_critical(seed_hat, np.full_like(w, query_stage), n_seeds, units, alpha)
        threshold = threshold * np.sqrt(seed_hat + query_stage)
        sd = math.sqrt(variance)
        hit = stats.norm.sf((threshold - abs(delta)) / sd) + stats.norm.cdf((-threshold - abs(delta)) / sd)
        return float(np.mean(hit))

    def mde(self, n_seeds: int, n_queries: int, alpha: float, power: float) -> float:
        """Smallest |delta| the crossed test detects with `power` at level alpha (NaN without any variance)."""
        seed_stage, query_stage = self.stages(n_seeds, n_queries) if n_seeds >= 2 else (0.0, 0.0)
        if not seed_stage + query_stage > 0:
            return float("nan")
        upper = math.sqrt(seed_stage + query_stage)
        while self.power(n_seeds, n_queries, upper, alpha) < power:
            upper *= 2.0
        return float(
            optimize.brentq(lambda d: self.power(n_seeds, n_queries, d, alpha) - power, 0.0, upper, xtol=1e-10)
        )
