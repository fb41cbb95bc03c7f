"""Every statistic of apex.report against a reference implementation or an analytic answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from apex.report.bootstrap import analytic_bootstrap_variance, hierarchical_bootstrap, percentile_interval
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import (
    cohens_h,
    discordant_counts,
    discordant_odds_ratio,
    mcnemar_exact,
    paired_t_test,
    sign_flip_test,
)
from apex.report.power import mde_paired_proportions, mde_paired_t, power_paired_proportions, power_paired_t

# --- McNemar -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n10", "n01"), [(0, 0), (1, 0), (0, 7), (5, 5), (12, 3), (3, 12), (40, 61), (200, 160)])
def test_mcnemar_matches_binomtest(n10: int, n01: int) -> None:
    expected = 1.0 if n10 + n01 == 0 else stats.binomtest(n10, n10 + n01, 0.5).pvalue
    assert mcnemar_exact(n10, n01) == pytest.approx(expected, rel=1e-10)


def test_mcnemar_vectorised_and_counts() -> None:
    a = np.array([1, 1, 0, 0, 1, 1, 0, 1])
    b = np.array([1, 0, 1, 0, 0, 0, 0, 1])
    assert discordant_counts(a, b) == (3, 1)
    p = mcnemar_exact(np.array([3, 10]), np.array([1, 2]))
    assert p.shape == (2,)
    assert p[1] == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


# --- t-test --------------------------------------------------------------------------------------------------


def test_paired_t_matches_scipy() -> None:
    a = np.array([0.71, 0.69, 0.74])
    b = np.array([0.66, 0.67, 0.70])
    result = paired_t_test(a, b)
    reference = stats.ttest_rel(a, b)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.pvalue == pytest.approx(reference.pvalue)
    assert result.sd_difference == pytest.approx(np.std(a - b, ddof=1))
    assert np.isnan(paired_t_test(a[:1], b[:1]).pvalue)


# --- multiple comparisons --------------------------------------------------------------------------------------


def test_holm_hand_worked() -> None:
    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 4*0.01, 3*0.02, 2*0.03, 1*0.04 = .04 .06 .06 .04 -> running max.
    p = np.array([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])


def test_holm_and_bh_match_references() -> None:
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10), [1.0, 0.0]])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])


def test_corrections_skip_nan() -> None:
    p = np.array([0.01, np.nan, 0.04])
    out = holm(p)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], holm(np.array([0.01, 0.04])))
    np.testing.assert_allclose(benjamini_hochberg(p)[[0, 2]], [0.02, 0.04])  # 2 * 0.01 / 1, 2 * 0.04 / 2
    with pytest.raises(ValueError):
        holm(np.array([1.5]))


# --- sign-flip permutation test ----------------------------------------------------------------------------------


def test_sign_flip_agrees_with_scipy_exact() -> None:
    d = np.array([0.4, -0.1, 0.3, 0.0, 0.2, 0.25, -0.05, 0.3, 0.15, 0.1, 0.0, 0.35])
    reference = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf)
    ours = sign_flip_test(d, 50_000, np.random.default_rng(0))
    assert ours.statistic == pytest.approx(d.mean())
    assert ours.pvalue == pytest.approx(reference.pvalue, abs=0.004)


def test_sign_flip_agrees_with_scipy_randomised_on_binary_pairs() -> None:
    rng = np.random.default_rng(1)
    a = rng.binomial(1, 0.6, size=400)
    b = rng.binomial(1, 0.53, size=400)
    d = (a - b).astype(float)
    reference = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=20_000, rng=np.random.default_rng(2)
    )
    ours = sign_flip_test(d, 20_000, np.random.default_rng(3))
    assert ours.pvalue == pytest.approx(reference.pvalue, abs=0.01)
    # With +-1 differences the sign-flip null is exactly the McNemar binomial.
    n10, n01 = discordant_counts(a, b)
    assert ours.pvalue == pytest.approx(mcnemar_exact(n10, n01), abs=0.01)


def test_sign_flip_degenerate_and_seeded() -> None:
    assert sign_flip_test(np.zeros(5), 1000, np.random.default_rng(0)).pvalue == 1.0
    d = np.array([1.0, 1.0, -1.0, 1.0, 0.0])
    first = sign_flip_test(d, 500, np.random.default_rng(7))
    second = sign_flip_test(d, 500, np.random.default_rng(7))
    assert first.pvalue == second.pvalue
    with pytest.raises(ValueError):
        sign_flip_test(np.array([]), 10, np.random.default_rng(0))


# --- effect sizes --------------------------------------------------------------------------------------------


def test_effect_sizes() -> None:
    assert cohens_h(0.5, 0.5) == 0.0
    assert cohens_h(0.7, 0.6) == pytest.approx(2 * np.arcsin(np.sqrt(0.7)) - 2 * np.arcsin(np.sqrt(0.6)))
    assert discordant_odds_ratio(30, 10) == 3.0
    assert discordant_odds_ratio(4, 0) == pytest.approx(9.0)
    assert np.isnan(discordant_odds_ratio(0, 0))


# --- bootstrap -------------------------------------------------------------------------------------------------


def test_bootstrap_one_seed_bernoulli_matches_normal_approximation() -> None:
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=2000) < 0.7).astype(float)
    p = x.mean()
    interval = percentile_interval([x], 20_000, 0.95, np.random.default_rng(1))
    half = 1.959964 * np.sqrt(p * (1 - p) / x.size)
    assert interval.estimate == pytest.approx(p)
    assert interval.low == pytest.approx(p - half, abs=0.003)
    assert interval.high == pytest.approx(p + half, abs=0.003)


def test_bootstrap_one_seed_equals_plain_index_bootstrap() -> None:
    # MRR-like values: a handful of distinct levels.
    rng = np.random.default_rng(5)
    x = 1.0 / rng.integers(1, 12, size=300)
    ours = hierarchical_bootstrap([x], 20_000, np.random.default_rng(6))
    plain = x[np.random.default_rng(7).integers(0, x.size, size=(20_000, x.size))].mean(axis=1)
    np.testing.assert_allclose(
        np.quantile(ours, [0.025, 0.5, 0.975]), np.quantile(plain, [0.025, 0.5, 0.975]), atol=3e-3
    )
    assert ours.var() == pytest.approx(analytic_bootstrap_variance([x]), rel=0.05)


def test_hierarchical_bootstrap_variance_is_analytic() -> None:
    rng = np.random.default_rng(2)
    groups = [(rng.uniform(size=n) < p).astype(float) for n, p in [(500, 0.60), (450, 0.68), (500, 0.64)]]
    replicates = hierarchical_bootstrap(groups, 40_000, np.random.default_rng(3))
    assert replicates.mean() == pytest.approx(np.mean([g.mean() for g in groups]), abs=1e-3)
    assert replicates.var() == pytest.approx(analytic_bootstrap_variance(groups), rel=0.04)
    # The seed stage matters: dropping it (queries only) gives a clearly narrower spread.
    within_only = np.mean([g.var() / g.size for g in groups]) / len(groups)
    assert replicates.var() > 1.5 * within_only


def test_bootstrap_rejects_bad_groups() -> None:
    with pytest.raises(ValueError):
        hierarchical_bootstrap([], 100, np.random.default_rng(0))
    with pytest.raises(ValueError):
        hierarchical_bootstrap([np.array([1.0, np.nan])], 100, np.random.default_rng(0))


# --- power ------------------------------------------------------------------------------------------------------


def test_mde_paired_proportions_solves_power_equation() -> None:
    mde = mde_paired_proportions(3000, 0.2, alpha=0.05, power=0.8)
    assert power_paired_proportions(3000, 0.2, mde) == pytest.approx(0.8, abs=1e-6)
    # Small-effect approximation (z_a + z_b) * sqrt(psi / N).
    approx = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * np.sqrt(0.2 / 3000)
    assert mde == pytest.approx(approx, rel=0.02)
    assert np.isnan(mde_paired_proportions(100, 0.0))


def test_mde_paired_t_solves_power_equation_and_shrinks_with_seeds() -> None:
    three = mde_paired_t(3, 0.01)
    assert power_paired_t(3, 0.01, three) == pytest.approx(0.8, abs=1e-6)
    assert mde_paired_t(10, 0.01) < three
    assert np.isnan(mde_paired_t(1, 0.01))
    # Cross-check the noncentral-t power against a simulated t-test.
    rng = np.random.default_rng(4)
    diffs = rng.normal(three, 0.01, size=(20_000, 3))
    simulated = np.mean(stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05)
    assert simulated == pytest.approx(0.8, abs=0.015)
