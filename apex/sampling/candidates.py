"""Candidate negatives: each query's top-K documents under the base model, minus the false-negative guard.

Scoring goes through `apex.search.topk_cosine` one chunk of queries at a time (or FAISS's exact inner-product
index when `sampler.backend: faiss` and faiss is importable), so the working memory is
(query_chunk × (K + doc_chunk)) scores on top of the corpus matrix, never queries × corpus.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from apex.core.progress import progress_bar
from apex.sampling.config import GuardConfig

log = logging.getLogger("apex.sampling")


@dataclass
class Positives:
    """Labelled positives as CSR: query i's positives are documents `idx[ptr[i]:ptr[i + 1]]` (each query has >= 1)."""

    ptr: np.ndarray  # (n_queries + 1,) int64
    idx: np.ndarray  # (n_pairs,) int64 document indices

    def counts(self) -> np.ndarray:
        return np.diff(self.ptr)

    def of(self, query: int) -> np.ndarray:
        return self.idx[self.ptr[query] : self.ptr[query + 1]]


@dataclass
class CandidatePool:
    """The top-K documents of every query (column j = rank j + 1 in the base ranking) and which are eligible."""

    scores: np.ndarray  # (Q, K) float32, descending per row
    indices: np.ndarray  # (Q, K) int64 document indices
    is_positive: np.ndarray  # (Q, K) bool: a labelled positive of that query
    eligible: np.ndarray  # (Q, K) bool: not a positive and not removed by the guard
    positive_score: np.ndarray  # (Q,) float32: lowest score among the query's labelled positives
    removed: dict[str, int] = field(default_factory=dict)
    backend: str = "exact"

    @property
    def ranks(self) -> np.ndarray:
        """(Q, K) int64 1-based ranks: the pool is exact top-K, so column j holds rank j + 1."""
        return np.broadcast_to(np.arange(1, self.scores.shape[1] + 1, dtype=np.int64), self.scores.shape)


def _topk_cosine(*args, **kwargs):  # -> (scores, indices)
    # Imported when scoring: apex.search brings torch, and the sampler registry (read before Hydra composes a
    # config, even for a typo) must not.
    from apex.search import topk_cosine

    return topk_cosine(*args, **kwargs)


def _faiss_module():  # -> module | None
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def score_candidates(
    queries: np.ndarray,
    documents: np.ndarray,
    k: int,
    *,
    backend: str = "exact",
    query_chunk_size: int = 1024,
    doc_chunk_size: int = 16384,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Exact top-k by cosine for every query: (scores (Q, k') float32, indices (Q, k') int64, backend used).

    k' = min(k, n_documents). Queries go in chunks so the (chunk × (k + doc_chunk)) block stays small.
    """
    k = min(k, documents.shape[0])
    faiss = _faiss_module() if backend == "faiss" else None
    if backend == "faiss" and faiss is None:
        log.warning("sampler.backend faiss requested but faiss is not importable: using the exact torch search")
    index = None
    if faiss is not None:
        # IndexFlatIP is exhaustive (exact) inner-product search; it holds its own copy of the corpus matrix.
        index = faiss.IndexFlatIP(documents.shape[1])
        index.add(np.ascontiguousarray(documents, dtype=np.float32))
    scores = np.empty((queries.shape[0], k), dtype=np.float32)
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    starts = range(0, queries.shape[0], query_chunk_size)
    for start in progress_bar(starts, desc="score candidates", enabled=progress, leave=False):
        chunk = np.ascontiguousarray(queries[start : start + query_chunk_size], dtype=np.float32)
        if index is not None:
            s, i = index.search(chunk, k)
        else:
            s, i = _topk_cosine(chunk, documents, k, chunk_size=doc_chunk_size)
        scores[start : start + len(chunk)] = s
        indices[start : start + len(chunk)] = i
    return scores, indices, "faiss" if index is not None else "exact"


def positive_mask(indices: np.ndarray, positives: Positives, n_documents: int) -> np.ndarray:
    """(Q, K) bool: indices[q, j] is one of query q's labelled positives (any number of positives per query)."""
    n_queries = indices.shape[0]
    # One int64 code per (query, document) pair makes membership a single vectorised isin.
    pool_codes = np.arange(n_queries, dtype=np.int64)[:, None] * n_documents + indices
    owners = np.repeat(np.arange(n_queries, dtype=np.int64), positives.counts())
    positive_codes = owners * n_documents + positives.idx
    return np.isin(pool_codes, positive_codes)


def lowest_positive_score(queries: np.ndarray, documents: np.ndarray, positives: Positives) -> np.ndarray:
    """(Q,) float32: min over each query's positives of cosine(query, positive).

    The lowest (not the highest) positive sets the guard: a candidate as close as the query's least similar
    known positive is as likely to be an unlabelled positive, so this removes more, erring on the safe side.
    """
    owners = np.repeat(np.arange(queries.shape[0]), positives.counts())
    pair_scores = np.einsum("ij,ij->i", queries[owners], documents[positives.idx]).astype(np.float32)
    return np.minimum.reduceat(pair_scores, positives.ptr[:-1])


def guard_limits(positive_score: np.ndarray, guard: GuardConfig) -> tuple[np.ndarray, float]:
    """(relative ceiling per query (Q,), absolute ceiling): a candidate above either is removed.

    relative = p - |p| (1 - r), r = max_relative_to_positive: equal to r * p for p >= 0, and still below p when a
    (badly embedded) positive has a negative cosine, where r * p would lie above it.
    """
    if guard.max_relative_to_positive is None:
        relative = np.full(positive_score.shape, np.inf, dtype=np.float64)
    else:
        p = positive_score.astype(np.float64)
        relative = p - np.abs(p) * (1.0 - guard.max_relative_to_positive)
    absolute = np.inf if guard.max_score is None else float(guard.max_score)
    return relative, absolute


def build_pool(
    queries: np.ndarray,
    documents: np.ndarray,
    positives: Positives,
    k: int,
    guard: GuardConfig,
    *,
    backend: str = "exact",
    query_chunk_size: int = 1024,
    doc_chunk_size: int = 16384,
    progress: bool = False,
) -> CandidatePool:
    """Score the top-K, mark labelled positives, apply the guard; count each removal under its first rule."""
    scores, indices, used = score_candidates(
        queries,
        documents,
        k,
        backend=backend,
        query_chunk_size=query_chunk_size,
        doc_chunk_size=doc_chunk_size,
        progress=progress,
    )
    is_positive = positive_mask(indices, positives, documents.shape[0])
    positive_score = lowest_positive_score(queries, documents, positives)
    relative, absolute = guard_limits(positive_score, guard)
    above_relative = (scores > relative[:, None]) & ~is_positive
    above_absolute = (scores > absolute) & ~is_positive & ~above_relative
    eligible = ~(is_positive | above_relative | above_absolute)
    removed = {
        "labelled_positive": int(is_positive.sum()),
        "relative_to_positive": int(above_relative.sum()),
        "absolute_ceiling": int(above_absolute.sum()),
    }
    log.info(
        "candidate pool: %d queries × top %d; removed %d labelled positives, %d above %s × positive, %d above %s",
        scores.shape[0],
        scores.shape[1],
        removed["labelled_positive"],
        removed["relative_to_positive"],
        guard.max_relative_to_positive,
        removed["absolute_ceiling"],
        guard.max_score,
    )
    return CandidatePool(scores, indices, is_positive, eligible, positive_score, removed, used)
