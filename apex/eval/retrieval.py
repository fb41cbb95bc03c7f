"""Evaluate a retriever from its embeddings: aggregate metrics and the per-query table.

The recipe encodes the test queries and the corpus with the model under test, then calls ``evaluate_embeddings``.
One exact top-K search (K = max(ks)) gives every metric; the rank of each query's best relevant document is exact
even beyond K (``apex.search.rank_of``), so the per-query table can show how far a miss was. Metric definitions
are in ``apex.eval.metrics``; each metric also appears as a per-query column whose mean is the aggregate, which is
what paired tests across runs need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.core.errors import InputError
from apex.eval.metrics import gains_at_ranks, hit_at, ideal_gains, ndcg_at, recall_at, reciprocal_rank_at
from apex.search import rank_of, topk_cosine

log = logging.getLogger("apex.eval")

# How far an embedding's norm may stray from 1 before inner product stops being cosine similarity.
NORM_TOLERANCE = 1e-3


@dataclass
class EvalResult:
    """``metrics``: aggregate name → value (see ``metric_names``), plus ``n_queries`` and ``corpus_size``.

    ``per_query``: one row per query in the order of the queries table, columns query_id, gold_doc (the best-ranked
    relevant document), gold_rank (int, 1-based, exact beyond K), gold_score, top_doc, top_score, n_relevant,
    relevant_docs (the ids of every relevant document, sorted, joined by a tab: qrels are TSV, so no id holds one;
    the report groups queries that share a relevant document into clusters), then one column per metric
    (rank_at_1 as 0/1 int64, the rest float64) whose mean is the aggregate.

    ``run``: with ``run_depth``, the ranked top documents per query (the TREC run file's rows; apex.eval.trec).
    """

    metrics: dict[str, float]
    per_query: pd.DataFrame
    run: pd.DataFrame | None = None  # query_id, doc_id, rank (1-based), score: each query's top run_depth
    seconds: float | None = None  # wall time of encoding + scoring, when the caller timed it (step-0 cache keeps it)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate cut-offs (positive integers, no repeats) and return them sorted."""
    values = tuple(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in values):
        raise ValueError(f"eval.ks must be a non-empty list of integers >= 1, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"eval.ks has repeats: {list(values)}")
    return tuple(sorted(int(k) for k in values))


def metric_names(ks: Sequence[int]) -> list[str]:
    """rank_at_1, recall_at_{k} for each k > 1, mrr_at_{K}, ndcg_at_{K} with K = max(ks)."""
    ks = check_ks(ks)
    top = ks[-1]
    return ["rank_at_1", *(f"recall_at_{k}" for k in ks if k > 1), f"mrr_at_{top}", f"ndcg_at_{top}"]


def _check_columns(table: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in table.columns:
            raise InputError(f"missing column (has {list(table.columns)})", file=name, field=column)


def _check_unique(ids: pd.Series, name: str, field: str) -> None:
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise InputError(f"{len(repeated)} repeated ids", file=name, record=str(repeated.iloc[0]), field=field)


def _check_embeddings(emb: np.ndarray, n_rows: int, name: str, table: str) -> None:
    if emb.ndim != 2 or emb.shape[0] != n_rows:
        raise InputError(f"shape {emb.shape} does not match {n_rows} rows of {table}", file=name, field="shape")
    if not np.issubdtype(emb.dtype, np.floating):
        raise InputError(f"dtype {emb.dtype} is not floating point", file=name, field="dtype")
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        raise InputError("non-finite values", file=name, record=f"row {int(np.argmin(finite))}", field="values")
    # Row norms accumulated in float64 through einsum's buffered loop: no float64 copy of the matrix (at 50,000
    # documents x 384 that copy peaked at 294 MB, 4x the embeddings themselves).
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb, dtype=np.float64))
    bad = np.abs(norms - 1.0) > NORM_TOLERANCE
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(
            f"{int(bad.sum())} rows not L2-normalised (norm {norms[row]:.6f})",
            file=name,
            record=f"row {row}",
            field="norm",
        )


def _relevant_pairs(
    queries: pd.DataFrame, corpus: pd.DataFrame, qrels: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map qrels to (query row, document row, relevance) int64 arrays, validated.

    Judgements of queries outside ``queries`` (another split) are skipped, counted and logged. A query of
    ``queries`` with no relevant document in ``corpus`` raises: scoring it 0 or dropping it would bias every metric.
    A judgement naming a document missing from ``corpus`` raises too: it would silently change the query's recall
    denominator and ideal DCG.
    """
    relevance = pd.to_numeric(qrels["relevance"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(relevance) & (relevance > 0) & (relevance == np.round(relevance)))
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(
            f"must be an integer > 0, got {qrels['relevance'].iloc[row]!r}",
            file="qrels",
            record=f"query {qrels['query_id'].iloc[row]}, doc {qrels['doc_id'].iloc[row]}",
            field="relevance",
        )
    q_rows = pd.Index(queries["query_id"]).get_indexer(qrels["query_id"])  # -1 where not in queries
    d_rows = pd.Index(corpus["doc_id"]).get_indexer(qrels["doc_id"])  # -1 where not in corpus
    ours = q_rows >= 0
    if not ours.all():
        log.info("qrels: skipped %d of %d judgements of queries not being evaluated", int((~ours).sum()), len(qrels))
    in_corpus = ours & (d_rows >= 0)
    n_relevant = np.bincount(q_rows[in_corpus], minlength=len(queries))
    orphans = np.flatnonzero(n_relevant == 0)
    if orphans.size:
        examples = [str(x) for x in queries["query_id"].iloc[orphans[:5]]]
        raise InputError(
            f"{orphans.size} of {len(queries)} queries have no relevant document in the corpus (e.g. {examples})",
            file="qrels",
            record=examples[0],
            field="qrels",
        )
    dangling = np.flatnonzero(ours & (d_rows < 0))
    if dangling.size:
        row = int(dangling[0])
        raise InputError(
            f"{dangling.size} judgements name documents not in the corpus",
            file="qrels",
            record=f"query {qrels['query_id'].iloc[row]}, doc {qrels['doc_id'].iloc[row]}",
            field="doc_id",
        )
    pairs = pd.DataFrame({"q": q_rows[ours], "d": d_rows[ours]})
    repeated = pairs.duplicated()
    if repeated.any():
        row = int(np.flatnonzero(ours)[int(np.argmax(repeated.to_numpy()))])
        raise InputError(
            "repeated judgement",
            file="qrels",
            record=f"query {qrels['query_id'].iloc[row]}, doc {qrels['doc_id'].iloc[row]}",
            field="doc_id",
        )
    return q_rows[ours].astype(np.int64), d_rows[ours].astype(np.int64), relevance[ours].astype(np.int64)


def _gold(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    gains: np.ndarray,
    top_scores: np.ndarray,
    top_indices: np.ndarray,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-ranked relevant document per query: (document row, 1-based rank, score).

    A query with a relevant document in its top K reads it off the search result, so gold_rank agrees with every
    metric by construction. For the others, ``rank_of`` ranks each of their relevant documents against the whole
    corpus (one row per (query, relevant document) pair, chunked like the search) and the best rank wins.
    """
    n_queries, top_k = gains.shape
    relevant = gains > 0
    hit = relevant.any(axis=1)
    first = relevant.argmax(axis=1)  # (n_queries,), meaningful where hit
    rows = np.arange(n_queries)
    gold_doc = top_indices[rows, first].astype(np.int64)
    gold_rank = (first + 1).astype(np.int64)
    gold_score = top_scores[rows, first].astype(np.float64)
    rel_query, rel_doc, _ = pairs
    missed = np.isin(rel_query, np.flatnonzero(~hit))
    if missed.any():
        q, d = rel_query[missed], rel_doc[missed]
        ranks, scores = rank_of(query_emb[q], doc_emb, d, chunk_size=chunk_size)
        order = np.lexsort((ranks, q))  # by query, then best rank first
        _, first_of_query = np.unique(q[order], return_index=True)
        best = order[first_of_query]
        gold_doc[q[best]], gold_rank[q[best]], gold_score[q[best]] = d[best], ranks[best], scores[best]
        too_high = ranks[best] <= top_k
        if too_high.any():
            # Only possible if a score sat on a float32 rounding midpoint (see apex.search.topk); counted, not hidden.
            log.warning("rank_of placed %d missed gold documents inside the top %d", int(too_high.sum()), top_k)
    return gold_doc, gold_rank, gold_score


def relevant_ids(doc_ids: np.ndarray, rel_query: np.ndarray, rel_doc: np.ndarray, n_queries: int) -> np.ndarray:
    """Per query row, the ids of its relevant documents, sorted and tab-joined (object array of n_queries str)."""
    pairs = pd.DataFrame({"q": rel_query, "doc": doc_ids[rel_doc].astype(str)}).sort_values(["q", "doc"])
    joined = pairs.groupby("q")["doc"].agg("\t".join)
    return joined.reindex(range(n_queries), fill_value="").to_numpy(dtype=object)


def evaluate_embeddings(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    queries: pd.DataFrame,
    corpus: pd.DataFrame,
    qrels: pd.DataFrame,
    *,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 16384,
    run_depth: int | None = None,
) -> EvalResult:
    """Score every query against the whole corpus and report rank@1, recall@k, MRR@K, nDCG@K (K = max(ks)).

    ``run_depth`` D > K also keeps each query's top D as ``EvalResult.run`` (for a TREC run file) and adds
    recall_at_D; the K metrics are unchanged (one search to depth max(K, D) serves both).

    Rows of ``query_emb`` follow ``queries``, rows of ``doc_emb`` follow ``corpus``; both L2-normalised, so the
    inner product is the cosine. Ties between equal scores go to the earlier document in ``corpus``. Qrels may hold
    several graded judgements per query (BEIR) or one (SQuAD); judgements of other queries are skipped and logged.
    Raises ``InputError`` on bad tables or embeddings, and for any query without a relevant document in ``corpus``.
    """
    ks = check_ks(ks)
    if isinstance(chunk_size, bool) or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    _check_columns(queries, "queries", ["query_id"])
    _check_columns(corpus, "corpus", ["doc_id"])
    _check_columns(qrels, "qrels", ["query_id", "doc_id", "relevance"])
    _check_unique(queries["query_id"], "queries", "query_id")
    _check_unique(corpus["doc_id"], "corpus", "doc_id")
    if len(queries) == 0:
        raise InputError("no queries to evaluate", file="queries", field="query_id")
    if len(corpus) == 0:
        raise InputError("empty corpus", file="corpus", field="doc_id")
    query_emb, doc_emb = np.asarray(query_emb), np.asarray(doc_emb)
    _check_embeddings(query_emb, len(queries), "query_emb", "queries")
    _check_embeddings(doc_emb, len(corpus), "doc_emb", "corpus")
    if query_emb.shape[1] != doc_emb.shape[1]:
        raise InputError(
            f"dimension {query_emb.shape[1]} != doc_emb dimension {doc_emb.shape[1]}", file="query_emb", field="shape"
        )
    pairs = _relevant_pairs(queries, corpus, qrels)
    rel_query, rel_doc, rel_gain = pairs

    started = time.perf_counter()
    top = ks[-1]
    depth = max(top, int(run_depth or 0))
    top_scores, top_indices = topk_cosine(query_emb, doc_emb, depth, chunk_size=chunk_size)  # (n_queries, min(D, N))
    gains = gains_at_ranks(top_indices, rel_query, rel_doc, rel_gain, len(corpus))
    n_relevant = np.bincount(rel_query, minlength=len(queries))
    columns: dict[str, np.ndarray] = {"rank_at_1": hit_at(gains, 1)}
    for k in ks:
        if k > 1:
            columns[f"recall_at_{k}"] = recall_at(gains, n_relevant, k)
    columns[f"mrr_at_{top}"] = reciprocal_rank_at(gains, top)
    columns[f"ndcg_at_{top}"] = ndcg_at(gains, ideal_gains(rel_query, rel_gain, len(queries), top), top)
    if depth > top:
        columns[f"recall_at_{depth}"] = recall_at(gains, n_relevant, depth)
    gold_doc, gold_rank, gold_score = _gold(query_emb, doc_emb, pairs, gains, top_scores, top_indices, chunk_size)

    doc_ids = corpus["doc_id"].to_numpy()
    per_query = pd.DataFrame(
        {
            "query_id": queries["query_id"].to_numpy(),
            "gold_doc": doc_ids[gold_doc],
            "gold_rank": gold_rank,
            "gold_score": gold_score,
            "top_doc": doc_ids[top_indices[:, 0]],
            "top_score": top_scores[:, 0].astype(np.float64),
            "n_relevant": n_relevant.astype(np.int64),
            "relevant_docs": relevant_ids(doc_ids, rel_query, rel_doc, len(queries)),
            **columns,
        }
    )
    # Aggregates are the pandas means of the columns themselves, so a reader recomputing them gets the same floats.
    metrics = {name: float(per_query[name].mean()) for name in columns}
    metrics["n_queries"] = float(len(queries))
    metrics["corpus_size"] = float(len(corpus))
    # Only the search and the metrics are timed here (the embeddings came in computed): say so, not "evaluated".
    log.debug(
        "scored %d queries against %d documents (search + metrics) in %.2f s: %s",
        len(queries),
        len(corpus),
        time.perf_counter() - started,
        ", ".join(f"{name}={value:.4f}" for name, value in metrics.items() if name in columns),
    )
    run = None
    if run_depth:
        cut = min(int(run_depth), top_indices.shape[1])
        run = pd.DataFrame(
            {
                "query_id": np.repeat(queries["query_id"].to_numpy(), cut),
                "doc_id": doc_ids[top_indices[:, :cut].ravel()],
                "rank": np.tile(np.arange(1, cut + 1), len(queries)),
                "score": top_scores[:, :cut].ravel().astype(np.float64),
            }
        )
    return EvalResult(metrics=metrics, per_query=per_query, run=run)
