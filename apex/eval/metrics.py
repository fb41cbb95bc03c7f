"""Per-query retrieval metrics computed from a ranked list of relevance gains, vectorised over queries.

Notation, for one query q: the system returns documents d_1, d_2, ... best first (ties broken by document order);
rel(d) >= 1 is the graded relevance the qrels give d (0 when d is not judged relevant); R is the set of relevant
documents, |R| >= 1. Every function here takes ``gains``, an (n_queries, K) array with gains[q, i] = rel(d_{i+1}),
so one pass of the search serves every metric and cut-off k <= K. A cut-off beyond the K columns available (a
corpus smaller than k) simply uses all of them.

The definitions are those of trec_eval and ranx (``hits@1``, ``recall@k``, ``mrr@k``, ``ndcg@k``); averaging a
per-query column over queries gives the usual aggregate, so the columns support paired tests across systems.
"""

from __future__ import annotations

import numpy as np


def gains_at_ranks(
    top_indices: np.ndarray, rel_query: np.ndarray, rel_doc: np.ndarray, rel_gain: np.ndarray, n_docs: int
) -> np.ndarray:
    """Look up rel(d_i) for every retrieved document: float64 (n_queries, K), 0 where not relevant.

    ``top_indices`` (n_queries, K) holds document rows, best first. The relevant pairs are given as three aligned
    arrays: query row, document row, relevance. Each pair is encoded as one integer q · n_docs + d, sorted once and
    probed with ``searchsorted``, so the cost is O((pairs + n_queries · K) log pairs) with no Python loop.
    """
    n_queries = top_indices.shape[0]
    keys = rel_query.astype(np.int64) * n_docs + rel_doc.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_gain = keys[order], np.asarray(rel_gain, dtype=np.float64)[order]
    probe = np.arange(n_queries, dtype=np.int64)[:, None] * n_docs + top_indices.astype(np.int64)  # (n_queries, K)
    if sorted_keys.size == 0:
        return np.zeros(probe.shape, dtype=np.float64)
    pos = np.minimum(np.searchsorted(sorted_keys, probe), sorted_keys.size - 1)
    return np.where(sorted_keys[pos] == probe, sorted_gain[pos], 0.0)


def ideal_gains(rel_query: np.ndarray, rel_gain: np.ndarray, n_queries: int, k: int) -> np.ndarray:
    """The best possible ranked gains: each query's relevances sorted descending, cut at k, zero-padded.

    Returns float64 (n_queries, k). This is the ideal list of trec_eval's ``ndcg``: it comes from the qrels, not
    from what the system retrieved, so relevant documents the system never found still count in the ideal.
    """
    rel_query = rel_query.astype(np.int64)
    rel_gain = np.asarray(rel_gain, dtype=np.float64)
    order = np.lexsort((-rel_gain, rel_query))  # by query, then by descending gain
    q, g = rel_query[order], rel_gain[order]
    counts = np.bincount(q, minlength=n_queries)
    first = np.cumsum(counts) - counts  # start of each query's group in the sorted pairs
    position = np.arange(q.size) - first[q]  # 0-based position within the group
    keep = position < k
    ideal = np.zeros((n_queries, k), dtype=np.float64)
    ideal[q[keep], position[keep]] = g[keep]
    return ideal


def hit_at(gains: np.ndarray, k: int) -> np.ndarray:
    """hits@k = 1 if any of d_1..d_k is relevant, else 0 (int64). With k = 1 this is rank@1: the top document is
    relevant."""
    return (gains[:, :k] > 0).any(axis=1).astype(np.int64)


def recall_at(gains: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """recall@k = |R ∩ {d_1..d_k}| / |R| (float64); graded relevance counts as relevant or not."""
    if np.any(n_relevant < 1):
        raise ValueError("recall is undefined for a query without relevant documents")
    return (gains[:, :k] > 0).sum(axis=1) / n_relevant


def reciprocal_rank_at(gains: np.ndarray, k: int) -> np.ndarray:
    """RR@k = 1 / r, r the rank of the first relevant document if r <= k, else 0 (float64). Its mean is MRR@k."""
    relevant = gains[:, :k] > 0
    first = relevant.argmax(axis=1)  # 0-based position of the first True (0 when none, masked below)
    return np.where(relevant.any(axis=1), 1.0 / (first + 1), 0.0)


def dcg_at(gains: np.ndarray, k: int) -> np.ndarray:
    """DCG@k = Σ_{i=1..k} rel(d_i) / log2(i + 1), linear gain (trec_eval / ranx ``ndcg``), float64."""
    cut = gains[:, :k]
    discount = np.log2(np.arange(2, cut.shape[1] + 2, dtype=np.float64))
    return (cut / discount).sum(axis=1)


def ndcg_at(gains: np.ndarray, ideal: np.ndarray, k: int) -> np.ndarray:
    """nDCG@k = DCG@k / IDCG@k, IDCG@k the DCG@k of ``ideal`` (see ``ideal_gains``); float64 in [0, 1]."""
    idcg = dcg_at(ideal, k)
    if np.any(idcg <= 0):
        raise ValueError("nDCG is undefined for a query without relevant documents")
    return dcg_at(gains, k) / idcg
