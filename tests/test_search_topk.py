"""Exact chunked top-k and rank: agreement with a brute-force full sort, ties, bounded blocks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import apex.search.topk as topk_module
from apex.search import rank_of, topk_cosine


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _tied_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows drawn from four exactly representable unit vectors: almost every score is tied with many others."""
    basis = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], dtype=np.float32)
    return basis[rng.integers(0, len(basis), size=n)]


def _brute(queries: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full score matrix (float64 product rounded to float32) and its stable descending order."""
    scores = (queries.astype(np.float64) @ documents.astype(np.float64).T).astype(np.float32)
    return scores, np.argsort(-scores, axis=1, kind="stable")


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 200, 1000])
@pytest.mark.parametrize("k", [1, 7, 200, 250])
def test_topk_matches_full_sort(chunk_size: int, k: int) -> None:
    rng = np.random.default_rng(chunk_size * 1000 + k)
    queries, documents = _unit(rng, 25, 32), _unit(rng, 200, 32)
    scores, indices = topk_cosine(queries, documents, k, chunk_size=chunk_size)
    full, order = _brute(queries, documents)
    expected = order[:, : min(k, 200)]
    assert indices.shape == scores.shape == expected.shape
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(scores, np.take_along_axis(full, expected, axis=1))
    assert scores.dtype == np.float32 and indices.dtype == np.int64


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 64, 1000])
def test_ties_broken_by_document_order(chunk_size: int) -> None:
    rng = np.random.default_rng(7)
    queries, documents = _tied_unit(rng, 12), _tied_unit(rng, 60)
    _, order = _brute(queries, documents)
    _, indices = topk_cosine(queries, documents, 25, chunk_size=chunk_size)
    np.testing.assert_array_equal(indices, order[:, :25])
    # Among equal scores the lower document index always comes first.
    ranks, _ = rank_of(queries, documents, order[:, 40], chunk_size=chunk_size)
    np.testing.assert_array_equal(ranks, np.full(12, 41))


def test_hand_computed_ties() -> None:
    # Scores for the query e1: d0 = 0, d1 = 1, d2 = 0.6, d3 = 1, d4 = 0 -> order d1, d3, d2, d0, d4.
    documents = np.array([[0, 1, 0], [1, 0, 0], [0.6, 0.8, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    query = np.array([[1, 0, 0]], dtype=np.float32)
    for chunk_size in (1, 2, 10):
        scores, indices = topk_cosine(query, documents, 10, chunk_size=chunk_size)
        assert indices.tolist() == [[1, 3, 2, 0, 4]]
        np.testing.assert_allclose(scores, [[1, 1, 0.6, 0, 0]], atol=1e-7)
        ranks, target_scores = rank_of(np.repeat(query, 5, axis=0), documents, np.arange(5), chunk_size=chunk_size)
        assert ranks.tolist() == [4, 1, 3, 2, 5]
        np.testing.assert_allclose(target_scores, [0, 1, 0.6, 1, 0], atol=1e-7)


def test_negative_zero_ties_with_positive_zero() -> None:
    # q·d0 = 1·(-0) + 0·(-1) = -0.0 and q·d1 = +0.0: equal scores, so document order decides.
    documents = np.array([[-0.0, -1.0], [0.0, 1.0]], dtype=np.float32)
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    _, indices = topk_cosine(query, documents, 2)
    assert indices.tolist() == [[0, 1]]
    ranks, _ = rank_of(np.repeat(query, 2, axis=0), documents, np.array([0, 1]))
    assert ranks.tolist() == [1, 2]


@pytest.mark.parametrize("chunk_size", [1, 9, 150, 500])
def test_rank_of_matches_full_sort(chunk_size: int) -> None:
    rng = np.random.default_rng(chunk_size)
    queries, documents = _unit(rng, 40, 24), _unit(rng, 150, 24)
    full, order = _brute(queries, documents)
    target = rng.integers(0, 150, size=40)
    ranks, scores = rank_of(queries, documents, target, chunk_size=chunk_size)
    expected_rank = np.argmax(order == target[:, None], axis=1) + 1
    np.testing.assert_array_equal(ranks, expected_rank)
    np.testing.assert_array_equal(scores, full[np.arange(40), target])


def test_rank_of_agrees_with_topk_positions_on_duplicate_documents() -> None:
    # Exact duplicates in one corpus: every chunking must agree on which copy comes first.
    rng = np.random.default_rng(3)
    base = _unit(rng, 30, 48)
    documents = base[rng.integers(0, 30, size=300)]
    queries = _unit(rng, 20, 48)
    for chunk_size in (1, 7, 128, 300):
        scores, indices = topk_cosine(queries, documents, 40, chunk_size=chunk_size)
        for position in (0, 5, 39):
            ranks, target_scores = rank_of(queries, documents, indices[:, position], chunk_size=chunk_size)
            np.testing.assert_array_equal(ranks, np.full(20, position + 1))
            np.testing.assert_array_equal(target_scores, scores[:, position])


def test_blocks_never_exceed_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    queries, documents = _unit(rng, 30, 16), _unit(rng, 101, 16)
    whole_scores, whole_indices = topk_cosine(queries, documents, 10, chunk_size=101)
    whole_ranks, _ = rank_of(queries, documents, whole_indices[:, 9], chunk_size=101)
    shapes: list[tuple[int, ...]] = []
    real = topk_module._score_block

    def spy(q, d):
        block = real(q, d)
        shapes.append(tuple(block.shape))
        return block

    monkeypatch.setattr(topk_module, "_score_block", spy)
    scores, indices = topk_cosine(queries, documents, 10, chunk_size=16)
    ranks, _ = rank_of(queries, documents, whole_indices[:, 9], chunk_size=16)
    # 101 documents in chunks of 16: 7 blocks per call, the last one of 5 columns, never 30 x 101.
    assert shapes == [(30, 16)] * 6 + [(30, 5)] + [(30, 16)] * 6 + [(30, 5)]
    np.testing.assert_array_equal(indices, whole_indices)
    np.testing.assert_array_equal(scores, whole_scores)
    np.testing.assert_array_equal(ranks, whole_ranks)


def test_query_row_blocks_bound_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    queries, documents = _unit(rng, 30, 16), _unit(rng, 50, 16)
    whole_scores, whole_indices = topk_cosine(queries, documents, 8)
    whole_ranks, _ = rank_of(queries, documents, whole_indices[:, 7])
    shapes: list[tuple[int, ...]] = []
    real = topk_module._score_block

    def spy(q, d):
        shapes.append(tuple(q.shape[:1]) + tuple(d.shape[:1]))
        return real(q, d)

    monkeypatch.setattr(topk_module, "_score_block", spy)
    monkeypatch.setattr(topk_module, "BLOCK_ENTRIES", 64)  # 4 query rows per 16-document chunk, 1 row beyond 64
    scores, indices = topk_cosine(queries, documents, 8, chunk_size=16)
    ranks, _ = rank_of(queries, documents, whole_indices[:, 7], chunk_size=16)
    assert max(rows * cols for rows, cols in shapes) <= 64
    assert {rows for rows, cols in shapes if cols == 16} == {4, 2}  # 30 rows = 7 blocks of 4 + 1 of 2
    np.testing.assert_array_equal(indices, whole_indices)
    np.testing.assert_array_equal(scores, whole_scores)
    np.testing.assert_array_equal(ranks, whole_ranks)
    shapes.clear()
    topk_cosine(queries, documents, 8, chunk_size=100)  # a chunk wider than the budget still gets one row
    assert shapes == [(1, 50)] * 30


def test_bad_inputs_raise() -> None:
    rng = np.random.default_rng(0)
    queries, documents = _unit(rng, 4, 8), _unit(rng, 10, 8)
    with pytest.raises(ValueError, match="shape mismatch"):
        topk_cosine(queries, _unit(rng, 10, 9), 3)
    with pytest.raises(ValueError, match="shape mismatch"):
        topk_cosine(queries[0], documents, 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_cosine(queries, documents, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        topk_cosine(queries, documents, 3, chunk_size=0)
    with pytest.raises(ValueError, match="non-finite"):
        topk_cosine(queries, np.where(np.arange(10)[:, None] == 4, np.nan, documents), 3)
    with pytest.raises(ValueError, match="non-finite"):
        rank_of(np.full_like(queries, np.inf), documents, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="empty"):
        topk_cosine(queries, documents[:0], 3)
    with pytest.raises(ValueError, match="shape mismatch"):
        rank_of(queries, _unit(rng, 10, 9), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        rank_of(queries, documents, np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError, match="out of range"):
        rank_of(queries, documents, np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="target_index"):
        rank_of(queries, documents, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="target_index"):
        rank_of(queries, documents, np.zeros(4, dtype=float))
