"""Calibration by simulation: A/A sweeps must not reject more than alpha (+ tolerance) after correction, and a
planted effect equal to the minimum detectable effect must be found about 80% of the time.

Outcomes follow a latent-threshold model close to real retrieval runs: query q has a difficulty z_q ~ N(0, 1)
shared by every system and seed; one trained model (arm, seed) ranks the gold document first when
z_q + 0.5 * e > c_arm with fresh noise e ~ N(0, 1) per (arm, seed, query). Two arms agree on most queries (about
15% discordant pairs), as two embedding models do. An A/A sweep has c_a = c_b.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from apex.report.bootstrap import percentile_interval
from apex.report.compare import classify
from apex.report.multitest import benjamini_hochberg, holm
from apex.report.paired import mcnemar_exact, paired_t_test, seed_heterogeneity, sign_flip_test
from apex.report.power import mde_paired_proportions

ALPHA = 0.05
N_SWEEPS = 240
N_COMPARISONS = 6  # e.g. two cells × three stop points
N_SEEDS = 3
N_QUERIES = 400
# Binomial standard error of a rate near 0.05 over 240 sweeps is 0.014; the tolerance is about 2.5 of them.
TOLERANCE = 0.035


def _arm(rng: np.random.Generator, difficulty: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 outcomes, shape (seeds, queries), of one arm."""
    noise = rng.standard_normal((N_SEEDS, difficulty.size))
    return (difficulty + 0.5 * noise > threshold).astype(np.float64)


def _sweep_pvalues(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Raw p-values of every test for one simulated A/A sweep."""
    perm, ttest, mcnemar, covers, heterogeneity = [], [], [], [], []
    for _ in range(N_COMPARISONS):
        difficulty = rng.standard_normal(N_QUERIES)
        a, b = _arm(rng, difficulty, -0.4), _arm(rng, difficulty, -0.4)
        d = a - b  # (seeds, queries)
        perm.append(sign_flip_test(d.ravel(), 1000, rng).pvalue)
        ttest.append(paired_t_test(a.mean(axis=1), b.mean(axis=1)).pvalue)
        mcnemar.extend(mcnemar_exact((d > 0).sum(axis=1), (d < 0).sum(axis=1)))
        interval = percentile_interval(list(d), 400, 0.95, rng)
        covers.append(interval.low <= 0.0 <= interval.high)
        heterogeneity.append(seed_heterogeneity(list(d)).pvalue)
    return {
        "perm": np.array(perm),
        "ttest": np.array(ttest),
        "mcnemar": np.array(mcnemar),
        "heterogeneity": np.array(heterogeneity),
        "covers": np.array(covers),
    }


@pytest.fixture(scope="module")
def aa_sweeps() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(20261128)
    return [_sweep_pvalues(rng) for _ in range(N_SWEEPS)]


def test_aa_uncorrected_tests_hold_their_level(aa_sweeps) -> None:
    for test in ("perm", "ttest", "mcnemar", "heterogeneity"):
        rate = np.mean(np.concatenate([s[test] for s in aa_sweeps]) <= ALPHA)
        assert rate <= ALPHA + TOLERANCE, f"{test}: rejects {rate:.3f} of A/A comparisons"


@pytest.mark.parametrize("test", ["perm", "ttest", "mcnemar"])
@pytest.mark.parametrize("correction", [holm, benjamini_hochberg])
def test_aa_corrected_family_wise_rejection(aa_sweeps, test: str, correction) -> None:
    # Under the global null every rejection is false: Holm bounds the family-wise rate, and so does BH (FDR = FWER).
    any_rejected = [np.any(correction(s[test]) <= ALPHA) for s in aa_sweeps]
    rate = float(np.mean(any_rejected))
    assert rate <= ALPHA + TOLERANCE, f"{test} + {correction.__name__}: a false rejection in {rate:.3f} of sweeps"
    # And the correction does something: uncorrected, six comparisons reject far more often.
    if test == "perm":
        uncorrected = float(np.mean([np.any(s[test] <= ALPHA) for s in aa_sweeps]))
        assert uncorrected > rate + 0.08


def test_aa_bootstrap_interval_of_the_difference_covers_zero(aa_sweeps) -> None:
    coverage = float(np.mean(np.concatenate([s["covers"] for s in aa_sweeps])))
    assert coverage >= 0.95 - TOLERANCE


def test_power_at_the_minimum_detectable_effect_is_about_80_percent() -> None:
    """Plant an effect equal to the MDE (from the discordance rate and the number of pairs) and count rejections."""
    rng = np.random.default_rng(11)
    n_pairs, discordance, n_sims = N_SEEDS * N_QUERIES, 0.15, 500
    mde = mde_paired_proportions(n_pairs, discordance, ALPHA, 0.8)
    probabilities = [(discordance + mde) / 2, (discordance - mde) / 2, 1 - discordance]  # d = +1, -1, 0
    draws = rng.choice(np.array([1.0, -1.0, 0.0]), p=probabilities, size=(n_sims, n_pairs))
    power_perm = np.mean([sign_flip_test(d, 1000, rng).pvalue <= ALPHA for d in draws])
    power_exact = np.mean(mcnemar_exact((draws > 0).sum(axis=1), (draws < 0).sum(axis=1)) <= ALPHA)
    # 500 simulations: standard error 0.018; the normal approximation and the discrete exact test add a little.
    assert power_perm == pytest.approx(0.8, abs=0.06)
    assert power_exact == pytest.approx(0.8, abs=0.06)
    # Half the MDE is clearly underpowered: this is what "not significant" means below the MDE.
    half = [(discordance + mde / 2) / 2, (discordance - mde / 2) / 2, 1 - discordance]
    weak = rng.choice(np.array([1.0, -1.0, 0.0]), p=half, size=(n_sims, n_pairs))
    assert np.mean(mcnemar_exact((weak > 0).sum(axis=1), (weak < 0).sum(axis=1)) <= ALPHA) < 0.45
    # The reference: a one-sided normal-approximation power formula value for the same inputs.
    z = stats.norm.ppf(1 - ALPHA / 2)
    formula = stats.norm.cdf((mde * np.sqrt(n_pairs) - z * np.sqrt(discordance)) / np.sqrt(discordance - mde**2))
    assert formula == pytest.approx(0.8, abs=1e-6)


def test_seed_variation_fools_pooled_tests_not_the_seed_level_test_and_the_verdict_rule_helps() -> None:
    """A/A, but every trained model (arm, seed) gets its own random quality shift (here about 3 points of rank@1
    per model): the pooled tests, which treat the models as fixed, reject too often; the seed-level t-test keeps its
    level; the report's verdict rule (apex.report.compare.classify) claims a difference far less often than the
    pooled test alone, though with 3 seeds not down to alpha (docs/report.md gives the measured figures)."""
    rng = np.random.default_rng(5)
    pooled, seed_level, claims = [], [], []
    for _ in range(300):
        difficulty = rng.standard_normal(N_QUERIES)
        shift = 0.1 * rng.standard_normal((2, N_SEEDS, 1))  # per-model threshold shift
        a = (difficulty + 0.5 * rng.standard_normal((N_SEEDS, N_QUERIES)) > -0.4 + shift[0]).astype(float)
        b = (difficulty + 0.5 * rng.standard_normal((N_SEEDS, N_QUERIES)) > -0.4 + shift[1]).astype(float)
        d = a - b
        p_perm = sign_flip_test(d.ravel(), 500, rng).pvalue
        t_test = paired_t_test(a.mean(axis=1), b.mean(axis=1))
        interval = percentile_interval(list(d), 400, 0.95, rng)
        row = {
            "p_perm_holm": p_perm,  # one comparison per sweep: Holm changes nothing
            "p_ttest_holm": t_test.pvalue,
            "ci_low": interval.low,
            "ci_high": interval.high,
            "p_heterogeneity": seed_heterogeneity(list(d)).pvalue,
        }
        pooled.append(p_perm <= ALPHA)
        seed_level.append(t_test.pvalue <= ALPHA)
        claims.append(classify(row, ALPHA) in ("robust", "consistent"))
    assert np.mean(seed_level) <= ALPHA + TOLERANCE
    assert np.mean(pooled) > 4 * ALPHA  # the documented limitation of the pooled tests
    assert np.mean(claims) < 0.5 * np.mean(pooled)
    assert np.mean(claims) < 0.2
