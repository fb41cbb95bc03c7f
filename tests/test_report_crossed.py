"""The crossed seeds × queries test (apex.report.crossed) against references and known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from apex.report.crossed import Components, cochran_cox_critical, crossed_mean, mean_squares


def test_mean_squares_match_a_two_way_anova() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, size=(4, 30)).astype(float)
    frame = pd.DataFrame(
        {
            "y": x.ravel(),
            "seed": np.repeat(np.arange(4), 30).astype(str),
            "query": np.tile(np.arange(30), 4).astype(str),
        }
    )
    table = anova_lm(smf.ols("y ~ C(seed) + C(query)", frame).fit())
    ms_seed, ms_query, ms_resid = mean_squares(x)
    assert ms_seed == pytest.approx(table.loc["C(seed)", "mean_sq"])
    assert ms_query == pytest.approx(table.loc["C(query)", "mean_sq"])
    assert ms_resid == pytest.approx(table.loc["Residual", "mean_sq"])


def test_one_seed_is_the_paired_query_level_t_test() -> None:
    rng = np.random.default_rng(1)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.05, 0.85, 0.10], size=(1, 400))
    result = crossed_mean(d)
    assert not result.seed_covered
    assert result.pvalue() == pytest.approx(stats.ttest_1samp(d[0], 0.0).pvalue, rel=1e-6)


def test_without_query_effects_it_is_the_seed_level_t_test() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(5, 200))
    noise -= noise.mean(axis=0, keepdims=True)  # every query has the same mean: no query effects at all
    d = 0.3 + rng.normal(size=(5, 1)) + noise
    result = crossed_mean(d)
    assert result.var_query_stage == 0.0
    assert result.pvalue() == pytest.approx(stats.ttest_1samp(d.mean(axis=1), 0.0).pvalue, rel=1e-6)
    low, high = result.interval(0.9)
    reference = stats.ttest_1samp(d.mean(axis=1), 0.0).confidence_interval(0.9)
    assert (low, high) == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_pvalue_interval_and_rejection_agree() -> None:
    rng = np.random.default_rng(3)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.04, 0.88, 0.08], size=(3, 300)) + rng.normal(0, 0.05, size=(3, 1))
    result = crossed_mean(d)
    p = result.pvalue()
    assert 0.0 < p < 1.0
    low, high = result.interval(1.0 - p)  # at level 1 - p the interval just touches 0
    assert min(abs(low), abs(high)) == pytest.approx(0.0, abs=1e-7)
    for alpha in (p * 0.9, p * 1.1):
        low, high = result.interval(1.0 - alpha)
        assert bool(result.rejects(alpha)) == (alpha > p) == (not low <= 0.0 <= high)
    # Cochran-Cox: between the two stages' t quantiles, weighted by their variances.
    crit = result.critical(0.05)
    assert stats.t.ppf(0.975, 299) <= crit <= stats.t.ppf(0.975, 2)
    expected = (result.var_seed_stage * stats.t.ppf(0.975, 2) + result.var_query_stage * stats.t.ppf(0.975, 299)) / (
        result.variance
    )
    assert crit == pytest.approx(expected)
    assert cochran_cox_critical(np.float64(0.0), np.float64(0.0), 3, 300, 0.05) == pytest.approx(
        stats.t.ppf(0.975, 299)
    )


def test_identical_arms_have_p_one_and_a_point_interval() -> None:
    result = crossed_mean(np.zeros((3, 50)))
    assert result.pvalue() == 1.0 and not result.rejects(0.05)
    assert result.interval(0.95) == (0.0, 0.0)


def test_variance_estimate_is_unbiased_under_the_crossed_model() -> None:
    """Additive crossed model with known components: the estimated variance of the mean matches its true value."""
    rng = np.random.default_rng(4)
    seeds, queries, sims = 4, 80, 4000
    var_seed, var_query, var_resid = 0.02, 0.5, 1.0
    x = (
        rng.normal(0, var_seed**0.5, size=(sims, seeds, 1))
        + rng.normal(0, var_query**0.5, size=(sims, 1, queries))
        + rng.normal(0, var_resid**0.5, size=(sims, seeds, queries))
    )
    result = crossed_mean(x)
    truth = var_seed / seeds + var_query / queries + var_resid / (seeds * queries)
    assert result.estimate.var() == pytest.approx(truth, rel=0.06)
    assert result.variance.mean() == pytest.approx(truth, rel=0.03)
    assert result.var_seed.mean() == pytest.approx(var_seed, rel=0.12)
    assert result.var_query.mean() == pytest.approx(var_query, rel=0.03)
    assert result.var_resid.mean() == pytest.approx(var_resid, rel=0.01)
    # The pooled view (pairs independent) is far too narrow here: it ignores the shared query effects.
    pooled = x.reshape(sims, -1).var(axis=1, ddof=1) / (seeds * queries)
    assert pooled.mean() < 0.6 * truth


def test_planning_mde_shrinks_with_seeds_and_queries_and_never_below_query_noise() -> None:
    components = Components(seed=1e-4, query=0.02, resid=0.06)
    three = components.mde(3, 300, 0.05, 0.8)
    assert components.power(3, 300, three, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert components.mde(10, 300, 0.05, 0.8) < components.mde(5, 300, 0.05, 0.8) < three
    assert components.mde(3, 3000, 0.05, 0.8) < three
    assert components.mde(3, 300, 0.0125, 0.8) > three  # a corrected level needs a larger effect
    # A pilot whose seeds agreed perfectly still plans with the query noise of each seed's mean.
    lucky = Components(seed=0.0, query=0.0, resid=0.06)
    assert lucky.stages(3, 300)[0] == pytest.approx(0.06 / 900)
    assert lucky.mde(3, 300, 0.05, 0.8) > 2.8 * (0.06 / 900) ** 0.5
    with pytest.raises(ValueError):
        components.power(1, 300, 0.01, 0.05)
