"""Known answers on hand-built cosines: band membership (rank, score, percentile), the guard, quotas, fallbacks.

One query, fifteen documents (cosine in brackets, base rank after the colon):
    d1 (0.85):1  d0 (0.80, the positive):2  d2 (0.78):3  d3 (0.77):4  d4 (0.70):5  d5 (0.65):6  ... d14 (0.20):15
The default guard removes everything above 0.95 × 0.80 = 0.76 (d1, d2, d3), leaving d4..d14: eleven cosines
0.70, 0.65, ..., 0.20, evenly spaced, so their 20th/50th/80th percentiles are exactly 0.30 / 0.45 / 0.60.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_sampling_fakes import config, make_tables

from apex.sampling import mine_negatives
from apex.sampling.bands import draw

SCORES = np.array([[0.80, 0.85, 0.78, 0.77, 0.70, 0.65, 0.60, 0.55, 0.50, 0.45, 0.40, 0.35, 0.30, 0.25, 0.20]])
HARD = {"d4", "d5", "d6"}  # ranks 5-7, cosines 0.70-0.60
SOFT = {"d9", "d10", "d11", "d12"}  # ranks 10-13, cosines 0.45-0.30


def mine(tmp_path, scores=SCORES, positives=None, seed=0, **overrides):
    queries, documents, qrels, encoder = make_tables(scores, positives or {0: [0]})
    cfg = config(**overrides)
    return mine_negatives(queries, documents, qrels, encoder, cfg, cache_dir=tmp_path, view="plain", seed=seed)


def by_band(result) -> dict[str, set[str]]:
    return {b: set(g["doc_id"]) for b, g in result.negatives.groupby("band")}


@pytest.mark.parametrize(
    ("hard", "soft"),
    [
        ({"by": "rank", "low": 1, "high": 7}, {"by": "rank", "low": 10, "high": 13}),
        ({"by": "score", "low": 0.575, "high": None}, {"by": "score", "low": 0.275, "high": 0.475}),
        ({"by": "percentile", "low": 80, "high": 100}, {"by": "percentile", "low": 20, "high": 50}),
    ],
    ids=["rank", "score", "percentile"],
)
def test_band_membership_known_answer(tmp_path, hard, soft) -> None:
    # Quotas above the band sizes and no fallback: every member is taken, so the table lists the bands exactly.
    result = mine(tmp_path, hard=hard, soft=soft, n_hard=10, n_soft=10, fallback=[])
    assert by_band(result) == {"hard": HARD, "soft": SOFT}
    bands = result.stats["bands"]
    assert (bands["hard"]["members"], bands["soft"]["members"], bands["pool"]["members"]) == (3, 4, 4)
    assert result.stats["shortages"]["hard"]["unfilled"] == 7 and result.stats["shortages"]["soft"]["unfilled"] == 6


def test_percentile_thresholds_are_calibrated_on_the_eligible_scores(tmp_path) -> None:
    result = mine(
        tmp_path, hard={"by": "percentile", "low": 80, "high": 100}, soft={"by": "percentile", "low": 20, "high": 50}
    )
    np.testing.assert_allclose(result.stats["bands"]["hard"]["interval"], [0.60, 0.70], atol=1e-6)
    np.testing.assert_allclose(result.stats["bands"]["soft"]["interval"], [0.30, 0.45], atol=1e-6)


def test_percentile_bands_follow_the_ranking_when_the_cosine_scale_changes(tmp_path) -> None:
    # A second "model" whose cosines are an increasing affine map of the first: score bands with fixed cosine
    # thresholds would change membership; percentile bands must not.
    squeezed = 0.4 * SCORES + 0.5
    bands = {"hard": {"by": "percentile", "low": 80, "high": 100}, "soft": {"by": "percentile", "low": 20, "high": 50}}
    common = {"n_hard": 10, "n_soft": 10, "fallback": [], "guard": {"max_relative_to_positive": None}, **bands}
    first = mine(tmp_path / "a", **common)
    second = mine(tmp_path / "b", scores=squeezed, **common)
    assert by_band(first) == by_band(second)
    fixed = {"hard": {"by": "score", "low": 0.575}, "soft": {"by": "score", "low": 0.275, "high": 0.475}}
    assert by_band(mine(tmp_path / "c", scores=squeezed, **{**common, **fixed})) != by_band(first)


def test_overlapping_bands_count_as_hard(tmp_path) -> None:
    result = mine(
        tmp_path,
        hard={"by": "rank", "low": 1, "high": 7},
        soft={"by": "rank", "low": 5, "high": 9},
        n_hard=10,
        n_soft=10,
    )
    assert by_band(result)["hard"] == HARD and by_band(result)["soft"] == {"d7", "d8"}


def eligible_after(tmp_path, positives=None, scores=SCORES, **guard) -> tuple[set[str], dict]:
    result = mine(tmp_path, scores=scores, positives=positives, name="hard_only", n_hard=20, n_soft=0, guard=guard)
    return set(result.negatives["doc_id"]), result.stats["guard"]["removed"]


def test_guard_relative_to_positive(tmp_path) -> None:
    kept, removed = eligible_after(tmp_path)
    assert kept == {f"d{i}" for i in range(4, 15)}
    assert removed == {"labelled_positive": 1, "relative_to_positive": 3, "absolute_ceiling": 0}


def test_guard_off_keeps_all_but_the_positive(tmp_path) -> None:
    kept, removed = eligible_after(tmp_path, max_relative_to_positive=None)
    assert kept == {f"d{i}" for i in range(1, 15)}
    assert removed["labelled_positive"] == 1 and removed["relative_to_positive"] == 0


def test_guard_absolute_ceiling_counted_after_the_relative_rule(tmp_path) -> None:
    kept, removed = eligible_after(tmp_path / "a", max_relative_to_positive=None, max_score=0.62)
    assert kept == {f"d{i}" for i in range(6, 15)}
    assert removed == {"labelled_positive": 1, "relative_to_positive": 0, "absolute_ceiling": 5}
    kept, removed = eligible_after(tmp_path / "b", max_score=0.62)
    assert kept == {f"d{i}" for i in range(6, 15)}
    assert removed == {"labelled_positive": 1, "relative_to_positive": 3, "absolute_ceiling": 2}


def test_guard_with_a_negative_positive_cosine_stays_below_the_positive(tmp_path) -> None:
    # p = -0.2: the ceiling is p - |p| * 0.05 = -0.21; a naive 0.95 * p = -0.19 would keep d2 (-0.205 > p!).
    scores = np.array([[-0.2, -0.1, -0.205, -0.215, -0.3]])
    kept, removed = eligible_after(tmp_path, scores=scores)
    assert kept == {"d3", "d4"} and removed["relative_to_positive"] == 2


def test_guard_uses_the_lowest_of_several_positives(tmp_path) -> None:
    # Positives d0 (0.80) and d8 (0.50): ceiling 0.95 * 0.50 = 0.475, so d4..d7 (0.70..0.55) go too.
    kept, removed = eligible_after(tmp_path, positives={0: [0, 8]})
    assert kept == {f"d{i}" for i in (9, 10, 11, 12, 13, 14)}
    assert removed == {"labelled_positive": 2, "relative_to_positive": 7, "absolute_ceiling": 0}


# Fallback fixture: hard = rank 5 only (d4), soft = ranks 10-13 (d9..d12), pool = d5..d8, d13, d14.
ONE_HARD = {"hard": {"by": "rank", "low": 5, "high": 5}, "soft": {"by": "rank", "low": 10, "high": 13}}


def counts(result) -> dict[str, int]:
    return result.negatives["band"].value_counts().to_dict()


def test_short_hard_band_is_filled_from_the_soft_surplus_first(tmp_path) -> None:
    result = mine(tmp_path, n_hard=3, n_soft=2, **ONE_HARD)
    assert counts(result) == {"hard": 1, "soft": 4}
    short = result.stats["shortages"]["hard"]
    assert short == {"queries_short": 1, "slots_short": 2, "filled_from": {"soft": 2, "pool": 0}, "unfilled": 0}


def test_then_from_the_rest_of_the_pool(tmp_path) -> None:
    result = mine(tmp_path, n_hard=3, n_soft=4, **ONE_HARD)
    assert counts(result) == {"hard": 1, "soft": 4, "pool": 2}
    assert result.stats["shortages"]["hard"]["filled_from"] == {"soft": 0, "pool": 2}
    assert set(result.negatives.query("band == 'pool'")["doc_id"]) <= {"d5", "d6", "d7", "d8", "d13", "d14"}


def test_fallback_order_and_no_fallback(tmp_path) -> None:
    only_pool = mine(tmp_path / "a", n_hard=3, n_soft=2, fallback=["pool"], **ONE_HARD)
    assert counts(only_pool) == {"hard": 1, "soft": 2, "pool": 2}
    none = mine(tmp_path / "b", n_hard=3, n_soft=2, fallback=[], **ONE_HARD)
    assert counts(none) == {"hard": 1, "soft": 2}
    assert none.stats["shortages"]["hard"]["unfilled"] == 2


def test_everything_exhausted_is_counted_unfilled(tmp_path) -> None:
    result = mine(tmp_path, n_hard=10, n_soft=10, **ONE_HARD)
    assert len(result.negatives) == 11  # every eligible candidate, once
    assert not result.negatives["doc_id"].duplicated().any()
    shortages = result.stats["shortages"]
    assert shortages["hard"]["unfilled"] + shortages["soft"]["unfilled"] == 20 - 11


def test_draw_is_uniform_among_allowed_cells() -> None:
    rng = np.random.default_rng(0)
    rows = 40_000
    mask = np.zeros((rows, 6), dtype=bool)
    mask[:, [1, 2, 4, 5]] = True
    picked = draw(mask, rng.random(mask.shape), np.full(rows, 2))
    assert (picked.sum(axis=1) == 2).all() and not picked[:, [0, 3]].any()
    frequency = picked[:, [1, 2, 4, 5]].mean(axis=0)  # each allowed cell: 2 of 4 -> 0.5
    np.testing.assert_allclose(frequency, 0.5, atol=0.01)


def test_draw_by_rank_takes_the_best() -> None:
    mask = np.array([[False, True, True, True], [True, False, False, True]])
    keys = np.broadcast_to(np.arange(4.0), mask.shape)
    picked = draw(mask, keys, np.array([2, 3]))
    assert picked.tolist() == [[False, True, True, False], [True, False, False, True]]
