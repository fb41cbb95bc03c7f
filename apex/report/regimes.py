"""Simulated BEIR-like sweeps, a data model deliberately unlike apex.report.simulate's, for the calibration regimes
of benchmarks/calibration.py and tests/test_report_calibration.py.

Query q has a difficulty p_q ~ Beta(4, 2) (mean 0.67) on the logit scale; its relevant document is shared with
`per_doc` − 1 other queries. Arm a has per-query effects (mean 0: some queries suit one recipe, some the other),
a share `doc_share` of their variance at the level of the document (every query of a document moves together).
The model of arm a trained with seed s has a quality shift ~ `seed_sd` · t(3) / sqrt(3) (heavy-tailed) on the
logit scale, and each (arm, seed, query) has logistic noise. Outcomes:

- binary (rank@1): 1[logit p_q + effect + shift + logistic noise > 0];
- graded (an nDCG-like score in [0, 1]): sigmoid(logit p_q + effect + shift + 0.8 · normal noise).

A planted effect moves arm A's logit by `effect` / (p̄ (1 − p̄)) so the true difference is about `effect`; for A/A
(effect 0) the true difference is exactly 0 by symmetry, which is all the calibration needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from apex.report.clusters import QueryClusters
from apex.report.crossed import crossed_mean

_SLOPE = 0.2  # p̄ (1 − p̄) at the mean difficulty: logit units per unit of rate


@dataclass(frozen=True)
class Sweep:
    """One simulated design: seeds × queries of two arms (a Regime of apex.report.simulate, another data model)."""

    n_seeds: int = 3
    n_queries: int = 300
    per_doc: int = 1  # queries per relevant document
    doc_share: float = 0.0  # share of the per-query arm-effect variance at document level
    graded: bool = False  # nDCG-like continuous metric instead of 0/1 rank@1
    seed_sd: float = 0.01  # model-to-model sd, in rate points (0.01 = 1 point)
    arm_sd: float = 0.6  # sd of per-query arm effects (logit)
    effect: float = 0.0
    overlap: bool = False  # each query is also relevant to a second, random document (NFCorpus-like overlaps)

    def incidence(self) -> np.ndarray:
        """(Q, D) 0/1: which documents each query needs (fixed per design, so its clusters are known)."""
        docs = -(-self.n_queries // self.per_doc)
        m = np.zeros((self.n_queries, docs))
        m[np.arange(self.n_queries), np.arange(self.n_queries) // self.per_doc] = 1.0
        if self.overlap:
            extra = np.random.default_rng(12345).integers(0, docs, self.n_queries)
            m[np.arange(self.n_queries), extra] = 1.0
        return m

    def clusters(self) -> QueryClusters:
        from scipy import sparse

        return QueryClusters.from_incidence(sparse.csr_matrix(self.incidence()))


def _effects(design: Sweep, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 1, Q) per-query arm effects with a document-level share (unit variance per query before arm_sd)."""
    m = design.incidence()
    weights = m / np.sqrt(m.sum(axis=1, keepdims=True))  # a query's documents' effects averaged, variance kept
    doc = rng.standard_normal((n, 1, m.shape[1])) @ weights.T
    own = rng.standard_normal((n, 1, design.n_queries))
    return design.arm_sd * (math.sqrt(design.doc_share) * doc + math.sqrt(1.0 - design.doc_share) * own)


def _shift(design: Sweep, shape: tuple[int, ...], rng: np.random.Generator, sd: float | None = None) -> np.ndarray:
    scale = (design.seed_sd if sd is None else sd) / _SLOPE
    return scale * rng.standard_t(3, size=shape) / math.sqrt(3.0)


def outcome(latent: np.ndarray, graded: bool, rng: np.random.Generator) -> np.ndarray:
    if graded:
        return special.expit(latent + 0.8 * rng.standard_normal(latent.shape))
    return (latent + rng.logistic(size=latent.shape) > 0).astype(np.float64)


def differences(design: Sweep, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, S, Q) per-query differences arm A − arm B of n independent sweeps."""
    difficulty = special.logit(rng.beta(4.0, 2.0, size=(n, 1, design.n_queries)))
    arms = []
    for planted in (design.effect / _SLOPE, 0.0):
        latent = difficulty + planted + _effects(design, n, rng) + _shift(design, (n, design.n_seeds, 1), rng)
        arms.append(outcome(np.broadcast_to(latent, (n, design.n_seeds, design.n_queries)), design.graded, rng))
    return arms[0] - arms[1]


@dataclass(frozen=True)
class Rates:
    n: int
    false_positive: float  # A/A: the crossed test rejects at alpha (two-sided)
    naive_false_positive: float  # the same test treating queries as independent (no clusters)
    coverage: float  # A/A interval covers 0

    def se(self, rate: float) -> float:
        return math.sqrt(max(rate * (1.0 - rate), 1e-12) / self.n)


def aa_rates(design: Sweep, n: int, rng: np.random.Generator, alpha: float = 0.05, chunk: int = 500) -> Rates:
    """A/A false-positive rate and coverage of the report's test, with and without the query clusters."""
    clusters = design.clusters()
    hits = naive = covered = 0
    for start in range(0, n, chunk):
        d = differences(replace(design, effect=0.0), min(chunk, n - start), rng)
        result = crossed_mean(d, clusters)
        rejected = result.rejects(alpha)
        hits += int(rejected.sum())
        low, high = result.interval(1.0 - alpha)
        covered += int(np.sum((low <= 0.0) & (high >= 0.0)))
        naive += int(crossed_mean(d).rejects(alpha).sum())
    return Rates(n, hits / n, naive / n, covered / n)


# --- stop choice with unequal arms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopRegime:
    """Two arms with K stop points, unequal seed counts and stabilities; A/A at every stop (true difference 0)."""

    seeds_a: int = 3
    seeds_b: int = 3
    sd_a: float = 0.02  # model-to-model sd (rate points) of the configuration's models
    sd_b: float = 0.01
    stops: int = 3
    n_queries: int = 300
    n_val: int = 300
    stop_corr: float = 0.5  # correlation of one seed's model shifts across its stop points


def _stop_shifts(regime: StopRegime, n: int, seeds: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    """(n, seeds, K) rate shifts of each model at each stop: t(3), correlated across stops of one seed."""
    common = rng.standard_t(3, size=(n, seeds, 1)) / math.sqrt(3.0)
    own = rng.standard_t(3, size=(n, seeds, regime.stops)) / math.sqrt(3.0)
    return sd * (math.sqrt(regime.stop_corr) * common + math.sqrt(1.0 - regime.stop_corr) * own)


def stop_choice_bias(
    regime: StopRegime, n: int, rng: np.random.Generator, cross_fit: bool = True
) -> tuple[float, float, float]:
    """(mean headline difference, its MC s.e., share of sweeps whose difference has the noisier arm ahead), in rate
    units, at the stop the rule picks. Seed-level model: a model's test and validation rates share its shift; query
    sampling adds independent noise of sd sqrt(p(1-p)/Q) to each. The old rule (cross_fit=False) averages every
    seed of each arm; the report's rule uses shared seeds only, each seed at the stop the others chose."""
    shared = min(regime.seeds_a, regime.seeds_b)
    noise_test, noise_val = math.sqrt(0.2 / regime.n_queries), math.sqrt(0.2 / regime.n_val)
    shift_a = _stop_shifts(regime, n, regime.seeds_a, regime.sd_a, rng)
    shift_b = _stop_shifts(regime, n, regime.seeds_b, regime.sd_b, rng)
    val_a = shift_a + noise_val * rng.standard_normal(shift_a.shape)
    val_b = shift_b + noise_val * rng.standard_normal(shift_b.shape)
    test = (shift_a[:, :shared] + noise_test * rng.standard_normal((n, shared, regime.stops))) - (
        shift_b[:, :shared] + noise_test * rng.standard_normal((n, shared, regime.stops))
    )  # (n, shared, K) per-seed test differences
    if not cross_fit:
        pick = np.argmax(val_a.mean(axis=1) + val_b.mean(axis=1), axis=1)  # (n,)
        diff = test[np.arange(n), :, pick].mean(axis=1)
    else:
        sums = val_a[:, :shared] + val_b[:, :shared]  # (n, shared, K): equal weights, shared seeds
        others = (sums.sum(axis=1, keepdims=True) - sums) / max(shared - 1, 1)  # leave-one-seed-out
        pick = np.argmax(others, axis=2)  # (n, shared)
        diff = np.take_along_axis(test, pick[..., None], axis=2)[..., 0].mean(axis=1)
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n)), float(np.mean(diff > 0))


# --- pilots and the power plan ----------------------------------------------------------------------------------


def plan_from_pilots(
    seed_sd: float,
    n_pilots: int,
    designs: list[tuple[int, int]],
    effects: list[float],
    rng: np.random.Generator,
    alpha: float = 0.05,
) -> dict[str, np.ndarray]:
    """Promised power (upper-limit plan and point-estimate plan) of n_pilots realistic 3-seed × 300-query pilots,
    and the true power of each design (from the components of a 12-seed × 6,000-query reference), shape
    (pilots, designs, effects) and (designs, effects)."""
    from apex.report.crossed import Components

    reference = differences(Sweep(n_seeds=12, n_queries=6000, seed_sd=seed_sd), 8, rng)
    truth_parts = [Components.from_crossed(crossed_mean(d)) for d in reference]
    truth = Components(*(float(np.mean([getattr(c, k) for c in truth_parts])) for k in ("seed", "query", "resid")))
    true_power = np.array([[truth.power(s, q, e, alpha) for e in effects] for s, q in designs])
    pilots = differences(Sweep(n_seeds=3, n_queries=300, seed_sd=seed_sd), n_pilots, rng)
    upper = np.empty((n_pilots, len(designs), len(effects)))
    point = np.empty_like(upper)
    for i, d in enumerate(pilots):
        one = crossed_mean(d)
        plans = (Components.upper(one), Components.from_crossed(one))
        for j, (s, q) in enumerate(designs):
            for k, e in enumerate(effects):
                upper[i, j, k] = plans[0].power(s, q, e, alpha)
                point[i, j, k] = plans[1].power(s, q, e, alpha)
    return {"upper": upper, "point": point, "true": true_power}


def stop_choice_false_better(
    regime: StopRegime, n: int, rng: np.random.Generator, alpha: float = 0.05, cross_fit: bool = True
) -> float:
    """Share of A/A sweeps the report calls significantly *better* (one direction: nominal alpha / 2), with
    per-query rank@1 outcomes (the logistic model above) at the stops the rule picks."""
    shared = min(regime.seeds_a, regime.seeds_b)
    shift_a = _stop_shifts(regime, n, regime.seeds_a, regime.sd_a, rng)
    shift_b = _stop_shifts(regime, n, regime.seeds_b, regime.sd_b, rng)
    noise_val = math.sqrt(0.2 / regime.n_val)
    val_a = shift_a + noise_val * rng.standard_normal(shift_a.shape)
    val_b = shift_b + noise_val * rng.standard_normal(shift_b.shape)
    if cross_fit:
        sums = val_a[:, :shared] + val_b[:, :shared]
        pick = np.argmax((sums.sum(axis=1, keepdims=True) - sums) / max(shared - 1, 1), axis=2)  # (n, shared)
    else:
        pick = np.repeat(np.argmax(val_a.mean(axis=1) + val_b.mean(axis=1), axis=1)[:, None], shared, axis=1)
    design = Sweep(n_seeds=shared, n_queries=regime.n_queries)
    difficulty = special.logit(rng.beta(4.0, 2.0, size=(n, 1, regime.n_queries)))
    arms = []
    for shift in (shift_a, shift_b):
        at = np.take_along_axis(shift[:, :shared], pick[..., None], axis=2) / _SLOPE  # (n, shared, 1)
        latent = difficulty + _effects(design, n, rng) + at
        arms.append(outcome(np.broadcast_to(latent, (n, shared, regime.n_queries)), False, rng))
    result = crossed_mean(arms[0] - arms[1])
    return float(np.mean(result.rejects(alpha) & (result.estimate > 0)))
