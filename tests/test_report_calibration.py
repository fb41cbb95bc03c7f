"""Calibration by simulation in the regime users meet (apex.report.simulate): a few seeds whose trained models differ,
queries shared by every seed and arm, per-query arm effects, rank@1 64-85%, seeds disagreeing on 3-15% of queries.

Every bound is a binomial quantile: with n simulated sweeps and a true rate r, a count above binom.ppf(0.999, n, r)
happens by chance once in a thousand runs. The RNG is fixed, so each test is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from apex.report.crossed import Components, crossed_mean
from apex.report.multitest import holm
from apex.report.plan import pilot_from_baseline, pilot_from_difference
from apex.report.regimes import (
    StopRegime,
    Sweep,
    aa_rates,
    plan_from_pilots,
    stop_choice_bias,
    stop_choice_false_better,
)
from apex.report.simulate import Regime, calibrate, simulate_differences, simulate_outcomes

ALPHA = 0.05
N_SIMS = 400
# The level tests: 2,000 A/A sweeps per regime put the 0.999 binomial bound at 6.6% for a true rate of 5%.
N_LEVEL = 2000


def _upper(n: int, rate: float) -> float:
    """The largest count of n consistent with `rate` (one-sided, P = 0.999), as a fraction."""
    return float(stats.binom.ppf(0.999, n, rate)) / n


# The regime (3 seeds × 300 queries at 84%), a 5-seed sweep, and the low-rank@1 regime of the full corpus.
REGIMES = [
    Regime(n_seeds=3, n_queries=300, rank1=0.84, disagreement=0.06, model_sd=0.0),
    Regime(n_seeds=3, n_queries=300, rank1=0.84, disagreement=0.03, model_sd=0.01),
    Regime(n_seeds=3, n_queries=1000, rank1=0.84, disagreement=0.06, model_sd=0.02),
    Regime(n_seeds=5, n_queries=300, rank1=0.84, disagreement=0.10, model_sd=0.015),
    Regime(n_seeds=3, n_queries=300, rank1=0.64, disagreement=0.15, model_sd=0.01),
]


@pytest.mark.parametrize(
    "regime",
    REGIMES,
    ids=lambda r: f"S{r.n_seeds}-Q{r.n_queries}-p{100 * r.rank1:g}-dis{100 * r.disagreement:g}-sd{100 * r.model_sd:g}",
)
def test_primary_test_holds_its_level_and_the_interval_covers(regime: Regime) -> None:
    cal = calibrate(regime, N_LEVEL, np.random.default_rng(20261201), ALPHA, effects=(0.02,))
    assert cal.false_positive <= _upper(N_LEVEL, ALPHA), f"A/A false positives {cal.false_positive:.3f}"
    assert 1.0 - cal.coverage <= _upper(2 * N_LEVEL, 0.07), f"coverage {cal.coverage:.3f} (goal >= 93%)"
    # The simulator has teeth: the old primary test (pooled McNemar) is fooled well past alpha in the same sweeps.
    assert cal.pooled_false_positive > _upper(N_LEVEL, ALPHA)


def test_holm_over_four_primary_comparisons_bounds_the_family_wise_rate() -> None:
    regime = Regime(n_seeds=3, n_queries=300, rank1=0.84, disagreement=0.06, model_sd=0.01)
    d = np.concatenate(list(simulate_differences(regime, 4 * N_SIMS, np.random.default_rng(7))))
    p = crossed_mean(d).pvalue().reshape(N_SIMS, 4)  # N_SIMS sweeps of four A/A comparisons each
    any_false = np.mean([np.any(holm(row) <= ALPHA) for row in p])
    assert any_false <= _upper(N_SIMS, ALPHA)
    assert np.mean(np.any(p <= ALPHA, axis=1)) > any_false  # uncorrected, four comparisons reject more often


@pytest.mark.parametrize(
    ("regime", "effect"),
    [
        (Regime(n_seeds=3, n_queries=300, rank1=0.84, disagreement=0.06, model_sd=0.005), 0.03),
        (Regime(n_seeds=5, n_queries=1000, rank1=0.75, disagreement=0.10, model_sd=0.01), 0.02),
    ],
)
def test_planted_effect_is_found_with_the_power_the_plan_promised(regime: Regime, effect: float) -> None:
    """The plan (apex.report.plan) reads a pilot sweep of the same recipe pair, promises a power for a planted
    effect, and sweeps with that effect reject about that often (±10 points, as the issue asks)."""
    rng = np.random.default_rng(11)
    pilot_regime = Regime(**{**regime.__dict__, "n_seeds": 10, "n_queries": 3000})
    pilots = [pilot_from_difference("pilot", d, upper=False) for d in next(simulate_differences(pilot_regime, 20, rng))]
    components = Components(
        *(float(np.mean([getattr(p.components, k) for p in pilots])) for k in ("seed", "query", "resid"))
    )
    promised = components.power(regime.n_seeds, regime.n_queries, effect, ALPHA)
    planted = Regime(**{**regime.__dict__, "effect": effect})
    found = np.mean(
        np.concatenate([crossed_mean(d).rejects(ALPHA) for d in simulate_differences(planted, N_SIMS, rng)])
    )
    assert 0.3 < promised < 0.95  # a regime where the promise is informative
    assert found == pytest.approx(promised, abs=0.10)


def test_simulator_produces_the_regime_it_is_asked_for() -> None:
    regime = Regime(n_seeds=2, n_queries=20_000, rank1=0.70, disagreement=0.08, model_sd=0.015, effect=0.02)
    a, b = simulate_outcomes(regime, 30, np.random.default_rng(5))
    assert b.mean() == pytest.approx(0.70, abs=0.005)
    assert a.mean() - b.mean() == pytest.approx(0.02, abs=0.005)
    assert np.mean(b[:, 0] != b[:, 1]) == pytest.approx(0.08, abs=0.004)
    # Model-to-model sd of rank@1 (20,000 queries: query noise of a model's mean is ~0.2 points, subtracted).
    spread = b.mean(axis=2).std(axis=1, ddof=1)
    noise = np.sqrt(0.08 / 2 / 20_000)
    assert np.sqrt(max(np.mean(spread**2) - noise**2, 0.0)) == pytest.approx(0.015, abs=0.004)
    with pytest.raises(ValueError):
        Regime(rank1=0.95, disagreement=0.2)


def test_baseline_only_pilot_doubles_one_arm_and_says_what_it_assumes() -> None:
    """Before any comparison exists, the plan reads the baseline's seeds: model-to-model variance and noise of one
    arm, doubled for two independent arms, match what a real comparison of two such arms shows."""
    regime = Regime(n_seeds=10, n_queries=3000, rank1=0.8, disagreement=0.08, model_sd=0.015)
    a, b = simulate_outcomes(regime, 20, np.random.default_rng(13))
    from_pairs = [
        pilot_from_difference("pair", (x - y).astype(float), upper=False).components for x, y in zip(a, b, strict=True)
    ]
    from_base = [pilot_from_baseline("base", y.astype(float), upper=False).components for y in b]
    for key in ("seed", "resid"):
        truth = np.mean([getattr(c, key) for c in from_pairs])
        assert np.mean([getattr(c, key) for c in from_base]) == pytest.approx(truth, rel=0.2), key
    assert "assumed" in pilot_from_baseline("base", b[0].astype(float)).source


# --- issue 18's regimes, on a second data model (apex.report.regimes: Beta difficulty, logistic link, t(3) seeds) --


@pytest.mark.parametrize(
    "design",
    [
        Sweep(n_seeds=3, per_doc=5, doc_share=0.7),
        Sweep(n_seeds=5, per_doc=5, doc_share=0.7, graded=True),
        Sweep(n_seeds=5, per_doc=2, doc_share=0.3, graded=True),
        Sweep(n_seeds=3, per_doc=5, doc_share=0.7, overlap=True, graded=True),
    ],
    ids=lambda s: (
        f"S{s.n_seeds}-per{s.per_doc}-share{s.doc_share}-{'graded' if s.graded else 'binary'}"
        + ("-overlap" if s.overlap else "")
    ),
)
def test_queries_sharing_documents_hold_the_level_only_with_clusters(design: Sweep) -> None:
    rates = aa_rates(design, N_LEVEL, np.random.default_rng(18))
    assert rates.false_positive <= _upper(N_LEVEL, ALPHA), f"A/A {rates.false_positive:.3f}"
    assert rates.coverage >= 1.0 - _upper(N_LEVEL, ALPHA)
    if design.graded and design.doc_share >= 0.7:  # teeth: the same test without clusters is fooled
        assert rates.naive_false_positive > _upper(N_LEVEL, ALPHA)


@pytest.mark.parametrize("graded", [False, True])
def test_two_seeds_hold_the_level(graded: bool) -> None:
    rates = aa_rates(
        Sweep(n_seeds=2, per_doc=5, doc_share=0.7, graded=graded, seed_sd=0.02), N_LEVEL, np.random.default_rng(2)
    )
    assert rates.false_positive <= _upper(N_LEVEL, ALPHA)
    assert rates.coverage >= 0.93
    cal = calibrate(
        Regime(n_seeds=2, n_queries=300, rank1=0.84, disagreement=0.06, model_sd=0.01),
        N_LEVEL,
        np.random.default_rng(3),
        ALPHA,
        effects=(0.02,),
    )
    assert cal.false_positive <= _upper(N_LEVEL, ALPHA)


@pytest.mark.parametrize(
    "regime", [StopRegime(3, 5, 0.02, 0.02), StopRegime(2, 5, 0.02, 0.02), StopRegime(3, 3, 0.03, 0.005)]
)
def test_cross_fitted_stop_choice_cannot_lean(regime: StopRegime) -> None:
    rng = np.random.default_rng(4)
    bias, se, _ = stop_choice_bias(regime, 100_000, rng, cross_fit=True)
    assert abs(bias) <= 0.0005  # 0.05 points; MC se ~0.006 points
    old = stop_choice_bias(regime, 100_000, rng, cross_fit=False)[0]
    assert old > 0.0005 + 3 * se  # teeth: the old rule (all seeds, arms averaged) leans to the noisier arm
    better = stop_choice_false_better(regime, N_SIMS * 5, rng, ALPHA)
    assert better <= _upper(N_SIMS * 5, ALPHA / 2)


def test_pilot_plans_promise_only_what_holds() -> None:
    """Issue 18's target: a promise of >= 80% must come with a true power >= 75% in >= 90% of realistic pilots
    (3 seeds × 300 queries, models differing by 2 points); the old point-estimate plan broke it in about half."""
    designs, effects, n = [(5, 1000), (10, 1000), (10, 3000)], [0.01, 0.02, 0.03], 80
    out = plan_from_pilots(0.02, n, designs, effects, np.random.default_rng(6))
    true = np.broadcast_to(out["true"], out["upper"].shape)
    kept = {key: np.all((out[key] < 0.8) | (true >= 0.75), axis=(1, 2)).mean() for key in ("upper", "point")}
    assert kept["upper"] >= 0.9
    assert kept["point"] < 0.7  # teeth: planning from the point estimates promises too much
    assert (out["upper"] >= 0.8).any()  # and the robust plan still promises something
