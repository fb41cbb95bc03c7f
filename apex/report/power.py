"""Minimum detectable effects (MDE): the smallest true difference a test would find with the given power.

Pooled pairs (McNemar / paired proportions, normal approximation; Connor 1987). With N (seed, query) pairs, a
discordance rate psi = (n10 + n01) / N and a true difference delta = p10 - p01, the two-sided level-alpha test has

    power(delta) = Phi( (|delta| * sqrt(N) - z_{1-alpha/2} * sqrt(psi)) / sqrt(psi - delta^2) ).

The MDE is the delta in (0, psi) where power(delta) equals the target, found by root finding. For small delta it is
about (z_{1-alpha/2} + z_{power}) * sqrt(psi / N). It treats pairs as independent, as the pooled tests do; the
discordance rate is the observed one (a planning value, not a truth).

Seeds (paired t-test on S per-seed differences with standard deviation sd): the test statistic follows a noncentral
t with S - 1 degrees of freedom and noncentrality delta * sqrt(S) / sd, so

    power(delta) = P(|T'| > t_{1-alpha/2, S-1}),

and the MDE solves power(delta) = target. With 3 seeds t_{0.975, 2} = 4.30, so the MDE is several seed standard
deviations: "not significant" then usually means "too few seeds", which is what this number is for.
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def power_paired_proportions(n_pairs: int, discordance: float, delta: float, alpha: float = 0.05) -> float:
    """Approximate power of the two-sided paired-proportions (McNemar) test at a true difference `delta`."""
    delta = abs(delta)
    if n_pairs <= 0 or not 0.0 < discordance <= 1.0:
        return float("nan")
    if delta >= discordance:
        return 1.0
    z_alpha = stats.norm.ppf(1.0 - alpha / 2.0)
    numerator = delta * math.sqrt(n_pairs) - z_alpha * math.sqrt(discordance)
    return float(stats.norm.cdf(numerator / math.sqrt(discordance - delta**2)))


def mde_paired_proportions(n_pairs: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |p10 - p01| the McNemar test detects with `power` (NaN without pairs or discordance)."""
    if n_pairs <= 0 or not 0.0 < discordance <= 1.0:
        return float("nan")
    upper = discordance * (1.0 - 1e-12)
    if power_paired_proportions(n_pairs, discordance, upper, alpha) < power:
        return float("nan")  # even the largest possible difference is not detectable
    return float(
        optimize.brentq(lambda d: power_paired_proportions(n_pairs, discordance, d, alpha) - power, 0.0, upper)
    )


def power_paired_t(n_seeds: int, sd: float, delta: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided paired t-test with `n_seeds` pairs and difference sd `sd`."""
    if n_seeds < 2 or not sd > 0:
        return float("nan")
    df = n_seeds - 1
    t_crit = stats.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(delta) * math.sqrt(n_seeds) / sd
    upper = stats.nct.sf(t_crit, df, nc)
    # P(T' < -t) computed as P(T' > t) at -nc (symmetry); scipy's cdf far in the tail can return NaN for what is
    # a negligible probability, so a NaN here is taken as 0.
    lower = stats.nct.sf(t_crit, df, -nc)
    return float(upper + (0.0 if math.isnan(lower) else lower))


def mde_paired_t(n_seeds: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean per-seed difference the seed-level t-test detects with `power` (NaN if S < 2 or sd = 0)."""
    if n_seeds < 2 or not sd > 0:
        return float("nan")
    upper = sd
    while power_paired_t(n_seeds, sd, upper, alpha) < power:
        upper *= 2.0
    return float(optimize.brentq(lambda d: power_paired_t(n_seeds, sd, d, alpha) - power, 0.0, upper))
