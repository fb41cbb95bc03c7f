"""Exact cosine top-k in chunks of documents.

Embeddings are L2-normalised, so cosine similarity is the inner product. The full (queries × corpus) score matrix
is never materialised: each chunk of documents is scored against the queries in blocks of at most
``BLOCK_ENTRIES`` scores (rows of queries × the chunk), and each block's top-k is merged into the running
(queries × k) best. Memory beyond the inputs is O(queries × k + BLOCK_ENTRIES + chunk × dim), whatever the number of
queries.

Scores are accumulated in float64 and rounded once to float32. A float32 matrix product rounds differently with the
shape of the block (a 1-column chunk takes a matrix-vector kernel, the last partial tile another): the same
(query, document) pair could score differently under two chunk sizes, two identical documents could score
differently in one block, and ``rank_of`` could disagree with ``topk_cosine``. The products of float32 numbers are
exact in float64 and the sum's error (about dim × 1e-16) is far below half a float32 ulp (about 3e-8 near 0.5), so
after rounding every kernel gives the same float32 score except in the rare case that the float64 sum lies within
that error of a float32 rounding midpoint. Ties are then genuine ties and are broken by document order, as a stable
sort by descending score would. The float64 product costs about 1.7× the float32 one on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

# Scores per block (2^24: 128 MiB as float64 plus 64 MiB as float32). Enough rows per block for an efficient matrix
# product (1024 queries against a 16384-document chunk), few enough that no caller's query count can exhaust memory.
BLOCK_ENTRIES = 1 << 24


def _check_pair(queries: np.ndarray, documents: np.ndarray, chunk_size: int) -> None:
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape}, documents {documents.shape}")
    if documents.shape[0] == 0:
        raise ValueError("documents is empty: nothing to rank")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    # A NaN score compares false with everything and would silently scramble the ranking.
    if not (np.isfinite(queries).all() and np.isfinite(documents).all()):
        raise ValueError("queries or documents hold non-finite values")


def _as_float64(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def _score_block(q64: torch.Tensor, d64: torch.Tensor) -> torch.Tensor:
    """(n_queries, dim) @ (chunk, dim)ᵀ in float64, rounded to float32: (n_queries, chunk).

    Adding 0.0 turns -0.0 into +0.0 so that the two zeros compare as the tie they are.
    """
    return (q64 @ d64.T).to(torch.float32) + 0.0


def _chunks(documents: np.ndarray, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, float64 tensor of documents[start : start + chunk_size]); one chunk is converted at a time."""
    for start in range(0, documents.shape[0], chunk_size):
        yield start, _as_float64(documents[start : start + chunk_size])


def _row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Slices of query rows such that each (rows × n_cols) block holds at most BLOCK_ENTRIES scores (>= 1 row)."""
    step = max(1, BLOCK_ENTRIES // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _block_topk(block: torch.Tensor, start: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of one block, ties by lower index: (scores, global indices), each (n_queries, k), k <= chunk.

    ``torch.topk`` is fast but does not say which of several equal scores it keeps, so it only yields the k-th best
    value per row. Every entry at or above it is a candidate (k of them per row, more only on ties); ``nonzero`` lists
    candidates row by row in increasing column order, and two stable sorts order them by (row, descending score,
    column). The first k of each row are the answer.
    """
    n_queries = block.shape[0]
    kth = torch.topk(block, k, dim=1, sorted=False).values.min(dim=1).values  # (n_queries,)
    rows, cols = (block >= kth[:, None]).nonzero(as_tuple=True)  # ~ n_queries × k entries
    scores = block[rows, cols]
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(rows[order], stable=True).indices]
    counts = torch.bincount(rows, minlength=n_queries)  # >= k for every row
    first = torch.cumsum(counts, 0) - counts
    take = order[first[:, None] + torch.arange(k)]  # (n_queries, k)
    return scores[take], cols[take] + start


def topk_cosine(
    queries: np.ndarray, documents: np.ndarray, k: int, chunk_size: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, indices), each (n_queries, k'), k' = min(k, n_docs), best first.

    scores are float32 inner products, indices int64 rows of ``documents``. Ties are broken by document index
    (lower first), as a stable descending sort would.
    """
    _check_pair(queries, documents, chunk_size)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    chunk_size = int(chunk_size)
    k = min(int(k), documents.shape[0])
    q64 = _as_float64(queries)
    n_queries = q64.shape[0]
    # Placeholders score -inf, below any finite score, and carry the index n_docs, above any real document; there
    # are at least k documents, so all are gone by the end.
    best_scores = torch.full((n_queries, k), -torch.inf, dtype=torch.float32)
    best_indices = torch.full((n_queries, k), documents.shape[0], dtype=torch.long)
    for start, d64 in _chunks(documents, chunk_size):
        for rows in _row_blocks(n_queries, d64.shape[0]):
            block = _score_block(q64[rows], d64)  # (rows, chunk)
            scores, indices = _block_topk(block, start, min(k, block.shape[1]))
            # Merge: the running best holds only lower document indices than this chunk (or placeholders) and is
            # itself ordered with ties by index, so a stable sort of the concatenation keeps lower indices first
            # among equal scores.
            scores = torch.cat([best_scores[rows], scores], dim=1)
            indices = torch.cat([best_indices[rows], indices], dim=1)
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
            best_scores[rows] = torch.gather(scores, 1, order)
            best_indices[rows] = torch.gather(indices, 1, order)
    return best_scores.numpy(), best_indices.numpy()


def rank_of(
    queries: np.ndarray, documents: np.ndarray, target_index: np.ndarray, chunk_size: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank (int64) and float32 score of one target document per query.

    rank = 1 + #(docs scoring higher) + #(docs scoring equal with a lower index): the position a stable
    descending sort would give it, and the position ``topk_cosine`` gives it when rank <= k.
    """
    _check_pair(queries, documents, chunk_size)
    chunk_size = int(chunk_size)
    target_index = np.asarray(target_index)
    if target_index.shape != (queries.shape[0],) or not np.issubdtype(target_index.dtype, np.integer):
        raise ValueError(f"target_index must be integers of shape ({queries.shape[0]},), got {target_index.shape}")
    n_docs = documents.shape[0]
    if target_index.size and (target_index.min() < 0 or target_index.max() >= n_docs):
        raise ValueError(f"target_index out of range [0, {n_docs}): {target_index.min()}..{target_index.max()}")
    q64 = _as_float64(queries)
    t_idx = torch.from_numpy(target_index.astype(np.int64))
    target = _as_float64(documents[target_index])  # (n_queries, dim)
    target_scores = (q64 * target).sum(dim=1).to(torch.float32) + 0.0  # (n_queries,), same rounding as blocks
    above = torch.zeros(q64.shape[0], dtype=torch.long)
    for start, d64 in _chunks(documents, chunk_size):
        idx = torch.arange(start, start + d64.shape[0])
        for rows in _row_blocks(q64.shape[0], d64.shape[0]):
            block = _score_block(q64[rows], d64)  # (rows, chunk)
            target_score, target_idx = target_scores[rows, None], t_idx[rows, None]
            higher = block > target_score
            tied_before = (block == target_score) & (idx[None, :] < target_idx)
            # The target never outranks itself, whatever a rounding midpoint did to its two computations.
            not_target = idx[None, :] != target_idx
            above[rows] += ((higher | tied_before) & not_target).sum(dim=1)
    return (above + 1).numpy(), target_scores.numpy()
