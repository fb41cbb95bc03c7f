"""Simulated sweeps in the regime users meet: the one outcome model behind the calibration tests, the benchmark
(benchmarks/calibration.py) and the checks of the plan command.

Latent-threshold model of rank@1. Query q has a difficulty z_q ~ N(0, 1) shared by every seed and arm; arm a has a
per-query effect alpha_aq ~ N(0, tau^2) (mean zero: some queries suit one recipe, some the other), shared by all of
its seeds; the model trained with seed s in arm a has a quality shift mu_as ~ N(0, kappa^2) (model-to-model
variation); and each (arm, seed, query) has noise e_asq ~ N(0, rho^2). The model ranks the gold document first when

    z_q + alpha_aq + mu_as + e_asq > c_a.

Every quantity is solved from what a user sees (`Regime`): c_a from the arm's expected rank@1; rho from how often two
seeds of one recipe disagree on a query; kappa from the standard deviation of rank@1 between trained models; tau is
`arm_query_ratio` * rho (arm-vs-arm disagreement exceeds seed-vs-seed disagreement). A planted effect of delta
points moves c_a of arm A so its expected rank@1 is p + delta; the true difference is then exactly delta.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize, stats

# Gauss-Hermite nodes for E over mu ~ N(0, kappa^2) of a smooth function.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
# Draw at most this many latent values at once (float32): keeps memory near 100 MB.
_CHUNK_VALUES = 12_000_000


@dataclass(frozen=True)
class Regime:
    """What a sweep looks like from the outside (rates as fractions, not points)."""

    n_seeds: int = 3
    n_queries: int = 300
    rank1: float = 0.84  # the baseline arm's expected rank@1
    disagreement: float = 0.06  # P(two seeds of one recipe disagree on a query)
    model_sd: float = 0.01  # sd of rank@1 between models of one recipe (0.01 = 1 point)
    arm_query_ratio: float = 1.0  # tau / rho: per-query arm effects relative to seed noise
    effect: float = 0.0  # planted true difference (arm A − arm B)

    def __post_init__(self) -> None:
        if self.n_seeds < 1 or self.n_queries < 2:
            raise ValueError("a regime needs >= 1 seed and >= 2 queries")
        if not 0.0 < self.rank1 < 1.0 or not 0.0 < self.rank1 + self.effect < 1.0:
            raise ValueError("rank@1 (with the effect) must lie strictly between 0 and 1")
        if not 0.0 < self.disagreement < 2.0 * min(self.rank1, 1.0 - self.rank1):
            raise ValueError(f"disagreement {self.disagreement} impossible at rank@1 {self.rank1}")
        if self.model_sd < 0 or self.arm_query_ratio < 0:
            raise ValueError("model_sd and arm_query_ratio must be >= 0")

    @cached_property
    def latent(self) -> tuple[float, float, float]:
        """(kappa, rho, tau) solving the regime's disagreement and model sd."""
        return _solve_latent(self.rank1, self.disagreement, self.model_sd, self.arm_query_ratio)

    def thresholds(self) -> tuple[float, float]:
        """(c_A, c_B): arm A has expected rank@1 rank1 + effect, arm B rank1."""
        kappa, rho, tau = self.latent
        scale = math.sqrt(1.0 + tau**2 + kappa**2 + rho**2)
        return scale * stats.norm.ppf(1.0 - self.rank1 - self.effect), scale * stats.norm.ppf(1.0 - self.rank1)


def _model_sd(c_scale: float, kappa: float, within: float) -> float:
    """sd over mu ~ N(0, kappa^2) of a model's rank@1, P(z + alpha + e > c - mu), with within = sqrt(1+tau^2+rho^2)."""
    values = stats.norm.cdf((kappa * _NODES - c_scale) / within)
    mean = float(np.sum(_WEIGHTS * values))
    return math.sqrt(max(float(np.sum(_WEIGHTS * (values - mean) ** 2)), 0.0))


def _disagreement(p: float, kappa: float, rho: float, tau: float) -> float:
    """P(y1 != y2) for two seeds of one arm: jointly normal latents sharing z and alpha."""
    total = 1.0 + tau**2 + kappa**2 + rho**2
    corr = (1.0 + tau**2) / total
    c = stats.norm.ppf(1.0 - p)
    both = stats.multivariate_normal.cdf([-c, -c], mean=[0.0, 0.0], cov=[[1.0, corr], [corr, 1.0]])
    return 2.0 * (p - float(both))


def _solve_latent(p: float, disagreement: float, model_sd: float, ratio: float) -> tuple[float, float, float]:
    kappa, rho = 0.0, 0.3
    for _ in range(30):
        rho_new = optimize.brentq(lambda r, k=kappa: _disagreement(p, k, r, ratio * r) - disagreement, 1e-4, 10.0)
        within = math.sqrt(1.0 + (ratio * rho_new) ** 2 + rho_new**2)
        if model_sd > 0:

            def gap(k: float, rho_new: float = rho_new, within: float = within) -> float:
                c = math.sqrt(within**2 + k**2) * stats.norm.ppf(1.0 - p)
                return _model_sd(c, k, within) - model_sd

            kappa_new = optimize.brentq(gap, 1e-6, 5.0)
        else:
            kappa_new = 0.0
        done = abs(rho_new - rho) < 1e-7 and abs(kappa_new - kappa) < 1e-7
        kappa, rho = kappa_new, rho_new
        if done:
            break
    return kappa, rho, ratio * rho


def simulate_outcomes(regime: Regime, n_sims: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes (a, b), each of shape (n_sims, S, Q) as int8: n_sims independent sweeps of two arms."""
    kappa, rho, tau = regime.latent
    c_a, c_b = regime.thresholds()
    shape = (n_sims, regime.n_seeds, regime.n_queries)
    f32 = np.float32
    difficulty = rng.standard_normal((n_sims, 1, regime.n_queries), dtype=f32)
    out = []
    for threshold in (c_a, c_b):
        arm_query = tau * rng.standard_normal((n_sims, 1, regime.n_queries), dtype=f32)
        model = kappa * rng.standard_normal((n_sims, regime.n_seeds, 1), dtype=f32)
        latent = rho * rng.standard_normal(shape, dtype=f32)
        latent += difficulty + arm_query + model
        out.append((latent > threshold).astype(np.int8))
    return out[0], out[1]


def simulate_differences(regime: Regime, n_sims: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Per-query differences a − b of n_sims sweeps, shape (chunk, S, Q) float32, in memory-bounded chunks."""
    per_sim = 3 * regime.n_seeds * regime.n_queries
    chunk = max(1, _CHUNK_VALUES // per_sim)
    for start in range(0, n_sims, chunk):
        a, b = simulate_outcomes(regime, min(chunk, n_sims - start), rng)
        yield (a - b).astype(np.float32)


def observed_regime(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """What a simulated sweep shows (checks the solver): rank@1 of B, seed-vs-seed disagreement, model sd of B."""
    seeds = b.shape[-2]
    rank1 = float(b.mean())
    disagree = float(np.mean(b[..., 0, :] != b[..., 1, :])) if seeds > 1 else float("nan")
    model_sd = float(np.sqrt(np.mean(b.mean(axis=-1).var(axis=-1, ddof=1)))) if seeds > 1 else float("nan")
    return {"rank1": rank1, "disagreement": disagree, "model_sd": model_sd}


@dataclass(frozen=True)
class Calibration:
    """Rates over simulated sweeps of one regime: each a fraction with its Monte Carlo standard error."""

    n_sims: int
    false_positive: float  # crossed test rejects at alpha, A/A
    pooled_false_positive: float  # the pooled McNemar (normal) test rejects, A/A: what the old primary did
    coverage: float  # the confidence interval covers the true difference (A/A and every planted effect)
    power: dict[float, float]  # planted effect -> rejection rate

    @staticmethod
    def se(rate: float, n: int) -> float:
        return math.sqrt(max(rate * (1.0 - rate), 1e-12) / n)


def calibrate(
    regime: Regime,
    n_sims: int,
    rng: np.random.Generator,
    alpha: float = 0.05,
    effects: tuple[float, ...] = (0.01, 0.02, 0.03),
) -> Calibration:
    """A/A false-positive rate, interval coverage and power of the crossed test (apex.report.crossed) in `regime`."""
    from apex.report.crossed import crossed_mean  # local: the simulator itself needs no inference code

    z = stats.norm.ppf(1.0 - alpha / 2.0)
    rejections: dict[float, int] = {}
    covered = pooled = 0
    for effect in (0.0, *effects):
        planted = Regime(**{**regime.__dict__, "effect": effect})
        hits = 0
        for d in simulate_differences(planted, n_sims, rng):
            result = crossed_mean(d)
            hits += int(np.sum(result.rejects(alpha)))
            low, high = result.interval(1.0 - alpha)
            covered += int(np.sum((low <= effect) & (effect <= high)))
            if effect == 0.0:
                n10, n01 = np.sum(d > 0, axis=(1, 2)), np.sum(d < 0, axis=(1, 2))
                pooled += int(np.sum(np.abs(n10 - n01) > z * np.sqrt(np.maximum(n10 + n01, 1))))
        rejections[effect] = hits
    return Calibration(
        n_sims=n_sims,
        false_positive=rejections[0.0] / n_sims,
        pooled_false_positive=pooled / n_sims,
        coverage=covered / (n_sims * (1 + len(effects))),
        power={effect: rejections[effect] / n_sims for effect in effects},
    )
