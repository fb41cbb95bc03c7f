"""Retrieval metrics: agreement with ranx, hand-computed cases with ties, exact gold ranks, bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from apex.core.errors import InputError
from apex.eval import evaluate_embeddings, metric_names

PER_QUERY_HEAD = [
    *("query_id", "gold_doc", "gold_rank", "gold_score", "top_doc", "top_score", "n_relevant", "relevant_docs")
]


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _random_case(seed: int, n_queries: int = 50, n_docs: int = 300, dim: int = 16, noise: float = 0.6):
    """Queries near one of their 1-6 graded relevant documents, so that hits, near misses and far misses all occur."""
    rng = np.random.default_rng(seed)
    doc_emb = _unit(rng, n_docs, dim)
    corpus = pd.DataFrame({"doc_id": [f"d{i:04d}" for i in range(n_docs)], "text": ["t"] * n_docs})
    queries = pd.DataFrame({"query_id": [f"q{i:03d}" for i in range(n_queries)], "text": ["t"] * n_queries})
    rows, anchors = [], []
    for qid in queries["query_id"]:
        docs = rng.choice(n_docs, size=int(rng.integers(1, 7)), replace=False)
        rows += [(qid, corpus["doc_id"][d], int(rng.integers(1, 4))) for d in docs]
        anchors.append(docs[0])
    qrels = pd.DataFrame(rows, columns=["query_id", "doc_id", "relevance"])
    noisy = doc_emb[anchors] + rng.normal(scale=rng.uniform(0.05, noise, size=(n_queries, 1)), size=(n_queries, dim))
    query_emb = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    return query_emb, doc_emb, queries, corpus, qrels


def _brute_ranks(query_emb: np.ndarray, doc_emb: np.ndarray) -> np.ndarray:
    """ranks[q, d] = 1-based position of d in a stable descending sort of q's full score row."""
    scores = (query_emb.astype(np.float64) @ doc_emb.astype(np.float64).T).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(order), 0), axis=1)
    return ranks


@pytest.fixture(scope="module")
def ranx_evaluate():
    ranx = pytest.importorskip("ranx")
    return ranx


def test_matches_ranx_on_graded_multi_relevant_qrels(ranx_evaluate) -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(0)
    ks = (1, 3, 10, 20)
    result = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels, ks=ks, chunk_size=64)
    # ranx sees the full brute-force run (every document with its score) and applies the cut-offs itself.
    scores = query_emb.astype(np.float64) @ doc_emb.astype(np.float64).T
    run = {
        q: dict(zip(corpus["doc_id"], map(float, row), strict=True))
        for q, row in zip(queries["query_id"], scores, strict=True)
    }
    judged = {q: dict(zip(g["doc_id"], map(int, g["relevance"]), strict=True)) for q, g in qrels.groupby("query_id")}
    names = {"rank_at_1": "hits@1", "recall_at_3": "recall@3", "recall_at_10": "recall@10",
             "recall_at_20": "recall@20", "mrr_at_20": "mrr@20", "ndcg_at_20": "ndcg@20"}  # fmt: skip
    assert list(names) == metric_names(ks) == [m for m in result.metrics if m not in ("n_queries", "corpus_size")]
    expected = ranx_evaluate.evaluate(
        ranx_evaluate.Qrels(judged), ranx_evaluate.Run(run), list(names.values()), return_mean=False
    )
    by_id = result.per_query.sort_values("query_id")  # ranx orders queries by id
    for ours, theirs in names.items():
        np.testing.assert_allclose(by_id[ours].to_numpy(), expected[theirs], atol=1e-6, err_msg=ours)
        assert result.metrics[ours] == pytest.approx(float(np.mean(expected[theirs])), abs=1e-6)
    # The case is not degenerate: some queries hit at 1, some miss the top 20.
    assert 0.1 < result.metrics["rank_at_1"] < 0.9
    assert (result.per_query["gold_rank"] > 20).any()


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_gold_rank_matches_full_sort(chunk_size: int) -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(1, n_queries=30, n_docs=120, noise=1.5)
    # Small K: most gold ranks come from rank_of beyond the top K, the rest from the top-K list.
    result = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels, ks=(1, 3), chunk_size=chunk_size)
    ranks = _brute_ranks(query_emb, doc_emb)
    doc_row = {d: i for i, d in enumerate(corpus["doc_id"])}
    expected_rank, expected_doc = [], []
    for i, qid in enumerate(queries["query_id"]):
        relevant = [doc_row[d] for d in qrels.loc[qrels["query_id"] == qid, "doc_id"]]
        best = min(relevant, key=lambda d: ranks[i, d])
        expected_rank.append(ranks[i, best])
        expected_doc.append(corpus["doc_id"][best])
    pq = result.per_query
    assert pq["gold_rank"].tolist() == expected_rank
    assert pq["gold_doc"].tolist() == expected_doc
    assert (pq["gold_rank"] > 3).sum() > 10 and (pq["gold_rank"] <= 3).sum() > 3
    gold_rows = pq["gold_doc"].map(doc_row).to_numpy()
    np.testing.assert_allclose(pq["gold_score"], np.sum(query_emb * doc_emb[gold_rows], axis=1), atol=1e-6)
    top = np.argmin(ranks, axis=1)
    assert pq["top_doc"].tolist() == corpus["doc_id"].to_numpy()[top].tolist()
    # The per-query columns agree with gold_rank, which agrees with every metric.
    assert (pq["rank_at_1"] == (pq["gold_rank"] == 1)).all()
    np.testing.assert_allclose(pq["mrr_at_3"], np.where(pq["gold_rank"] <= 3, 1.0 / pq["gold_rank"], 0.0))


def test_hand_computed_with_ties() -> None:
    # Exactly representable embeddings. Scores per query (documents d0..d4):
    #   qA = e1: 1, 0, 1, 0.6, 0 -> order d0, d2, d3, d1, d4 (d0 and d2 tie: d0 first; d1 and d4 tie: d1 first)
    #   qB = e2: 0, 1, 0, 0.8, 0 -> order d1, d3, d0, d2, d4
    #   qC = e3: 0, 0, 0, 0, 1   -> order d4, d0, d1, d2, d3
    doc_emb = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], dtype=np.float32)
    query_emb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    corpus = pd.DataFrame({"doc_id": ["d0", "d1", "d2", "d3", "d4"]})
    queries = pd.DataFrame({"query_id": ["qA", "qB", "qC"]})
    qrels = pd.DataFrame(
        [("qA", "d2", 2), ("qA", "d4", 1), ("qB", "d0", 1), ("qC", "d4", 3)],
        columns=["query_id", "doc_id", "relevance"],
    )
    result = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels, ks=(1, 2, 5))
    pq = result.per_query.set_index("query_id")
    # qA: relevant d2 (rel 2) at rank 2, d4 (rel 1) at rank 5.
    # qB: relevant d0 at rank 3 (tied at 0 with d2 and d4, first by document order).  qC: d4 at rank 1.
    expected = {
        "rank_at_1": [0, 0, 1],
        "recall_at_2": [0.5, 0.0, 1.0],
        "recall_at_5": [1.0, 1.0, 1.0],
        "mrr_at_5": [0.5, 1 / 3, 1.0],
        "ndcg_at_5": [(2 / math.log2(3) + 1 / math.log2(6)) / (2 + 1 / math.log2(3)), 1 / math.log2(4), 1.0],
        "gold_rank": [2, 3, 1],
        "n_relevant": [2, 1, 1],
    }
    for column, values in expected.items():
        np.testing.assert_allclose(pq[column].to_numpy(), values, atol=1e-12, err_msg=column)
    assert pq["gold_doc"].tolist() == ["d2", "d0", "d4"]
    assert pq["relevant_docs"].tolist() == ["d2\td4", "d0", "d4"]  # every relevant id, sorted, tab-joined
    assert pq["top_doc"].tolist() == ["d0", "d1", "d4"]
    np.testing.assert_allclose(pq["top_score"], [1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(pq["gold_score"], [1, 0, 1], atol=1e-7)
    assert result.metrics["rank_at_1"] == pytest.approx(1 / 3)
    assert result.metrics["mrr_at_5"] == pytest.approx((0.5 + 1 / 3 + 1) / 3)
    assert result.metrics["n_queries"] == 3.0 and result.metrics["corpus_size"] == 5.0

    # With K = 2, qB's gold (rank 3) lies beyond the list and comes from rank_of; a later tie-loser ranks 5.
    qrels_far = pd.concat([qrels, pd.DataFrame([("qD", "d4", 1)], columns=qrels.columns)], ignore_index=True)
    queries_far = pd.DataFrame({"query_id": ["qA", "qB", "qC", "qD"]})
    query_far = np.vstack([query_emb, [[0, 1, 0]]]).astype(np.float32)
    for chunk_size in (1, 2, 100):
        far = evaluate_embeddings(query_far, doc_emb, queries_far, corpus, qrels_far, ks=(1, 2), chunk_size=chunk_size)
        assert far.per_query["gold_rank"].tolist() == [2, 3, 1, 5]
        assert far.per_query["gold_doc"].tolist() == ["d2", "d0", "d4", "d4"]
        assert far.per_query["mrr_at_2"].tolist() == [0.5, 0.0, 1.0, 0.0]


def test_k_beyond_corpus_and_column_means() -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(2, n_queries=12, n_docs=8)
    result = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels, ks=(1, 5, 50))
    pq = result.per_query
    assert list(pq.columns) == PER_QUERY_HEAD + metric_names((1, 5, 50))
    # Every relevant document is within the 8 retrieved: recall@50 is 1 for all.
    assert (pq["recall_at_50"] == 1.0).all()
    assert pq["gold_rank"].dtype == np.int64 and pq["rank_at_1"].dtype == np.int64
    for name in metric_names((1, 5, 50)):
        assert result.metrics[name] == pq[name].mean()


def test_per_query_follows_queries_order() -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(3, n_queries=20, n_docs=60)
    base = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels).per_query
    perm = np.random.default_rng(0).permutation(20)
    shuffled = evaluate_embeddings(
        query_emb[perm], doc_emb, queries.iloc[perm].reset_index(drop=True), corpus, qrels
    ).per_query
    assert shuffled["query_id"].tolist() == queries["query_id"].to_numpy()[perm].tolist()
    pd.testing.assert_frame_equal(shuffled, base.iloc[perm].reset_index(drop=True))


def test_qrels_of_other_queries_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(4, n_queries=10, n_docs=40)
    extra = pd.DataFrame([("other1", "d0001", 1), ("other2", "nowhere", 1)], columns=qrels.columns)
    with caplog.at_level(logging.INFO, logger="apex.eval"):
        with_extra = evaluate_embeddings(query_emb, doc_emb, queries, corpus, pd.concat([qrels, extra]))
    assert "skipped 2 of" in caplog.text
    plain = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels)
    assert with_extra.metrics == plain.metrics


def _inputs():
    doc_emb = np.eye(4, dtype=np.float32)
    query_emb = np.eye(4, dtype=np.float32)[:2]
    queries = pd.DataFrame({"query_id": ["q0", "q1"]})
    corpus = pd.DataFrame({"doc_id": ["d0", "d1", "d2", "d3"]})
    qrels = pd.DataFrame({"query_id": ["q0", "q1"], "doc_id": ["d0", "d1"], "relevance": [1, 1]})
    return query_emb, doc_emb, queries, corpus, qrels


def test_valid_minimal_inputs_work() -> None:
    result = evaluate_embeddings(*_inputs())
    assert result.metrics["rank_at_1"] == 1.0


@pytest.mark.parametrize(
    ("change", "file", "field"),
    [
        (lambda a: a.update(qrels=a["qrels"].iloc[:1]), "qrels", "qrels"),  # q1 has no judgement at all
        (lambda a: a.update(corpus=a["corpus"].replace({"d1": "dX"})), "qrels", "qrels"),  # q1's doc not in corpus
        (
            lambda a: a.update(
                qrels=pd.concat([a["qrels"], pd.DataFrame([("q0", "dZ", 1)], columns=a["qrels"].columns)])
            ),
            "qrels",
            "doc_id",
        ),
        (lambda a: a.update(qrels=pd.concat([a["qrels"], a["qrels"].iloc[:1]])), "qrels", "doc_id"),
        (lambda a: a.update(qrels=a["qrels"].assign(relevance=[1, 0])), "qrels", "relevance"),
        (lambda a: a.update(qrels=a["qrels"].assign(relevance=[1.5, 1])), "qrels", "relevance"),
        (lambda a: a.update(qrels=a["qrels"].drop(columns="relevance")), "qrels", "relevance"),
        (lambda a: a.update(queries=pd.DataFrame({"query_id": ["q0", "q0"]})), "queries", "query_id"),
        (lambda a: a.update(corpus=pd.DataFrame({"doc_id": ["d0", "d1", "d1", "d3"]})), "corpus", "doc_id"),
        (lambda a: a.update(query_emb=a["query_emb"][:1]), "query_emb", "shape"),
        (lambda a: a.update(doc_emb=np.eye(5, dtype=np.float32)), "doc_emb", "shape"),
        (lambda a: a.update(query_emb=np.eye(2, 3, dtype=np.float32)), "query_emb", "shape"),
        (lambda a: a.update(doc_emb=a["doc_emb"] * 2), "doc_emb", "norm"),
        (
            lambda a: a.update(query_emb=np.where(np.eye(4)[:2] == 1, np.nan, 0).astype(np.float32)),
            "query_emb",
            "values",
        ),
    ],
)
def test_bad_input_raises_input_error(change, file: str, field: str) -> None:
    args = dict(zip(["query_emb", "doc_emb", "queries", "corpus", "qrels"], _inputs(), strict=True))
    change(args)
    with pytest.raises(InputError) as caught:
        evaluate_embeddings(**args)
    assert (caught.value.file, caught.value.field) == (file, field)


@pytest.mark.parametrize("ks", [(), (0, 5), (5, 5), (1, 2.5), (True,)])
def test_bad_ks_raise(ks) -> None:
    with pytest.raises(ValueError, match="ks"):
        evaluate_embeddings(*_inputs(), ks=ks)


def test_bad_chunk_size_raises() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_embeddings(*_inputs(), chunk_size=0)
