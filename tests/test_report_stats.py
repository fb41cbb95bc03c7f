"""Every statistic of apex.report against a reference implementation or an analytic answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import (
    cohens_h,
    discordant_counts,
    discordant_odds_ratio,
    mcnemar_exact,
    sign_flip_test,
)

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
