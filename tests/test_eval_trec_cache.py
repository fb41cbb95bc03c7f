"""TREC run/qrels files round-trip through ranx; the step-0 cache and shared corpus embeddings of a stop point."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from test_eval_metrics import _random_case

from apex.core.integrity import seal
from apex.data import Dataset
from apex.eval import evaluate_embeddings
from apex.eval.config import EvalConfig
from apex.eval.stop_point import EvalTarget, evaluate_stop_point
from apex.eval.trec import read_run, write_qrels, write_run

ranx = pytest.importorskip("ranx")


def test_run_file_round_trip_through_ranx_matches_our_metrics(tmp_path) -> None:
    query_emb, doc_emb, queries, corpus, qrels = _random_case(3, n_queries=60, n_docs=400)
    result = evaluate_embeddings(query_emb, doc_emb, queries, corpus, qrels, ks=(1, 5, 10), run_depth=100)
    assert result.run is not None and len(result.run) == 60 * 100
    assert result.run.groupby("query_id")["rank"].apply(list).map(lambda r: r == list(range(1, 101))).all()
    run_path = write_run(result.run, tmp_path / "test.run", tag="apex-step0")
    qrels_path = write_qrels(qrels, tmp_path / "test.qrels")
    back = read_run(run_path)
    assert back[["query_id", "doc_id", "rank"]].equals(result.run[["query_id", "doc_id", "rank"]])
    np.testing.assert_array_equal(back["score"].to_numpy(np.float32), result.run["score"].to_numpy(np.float32))
    names = {"rank_at_1": "hits@1", "recall_at_5": "recall@5", "recall_at_10": "recall@10", "mrr_at_10": "mrr@10",
             "ndcg_at_10": "ndcg@10", "recall_at_100": "recall@100"}  # fmt: skip
    scores = ranx.evaluate(
        ranx.Qrels.from_file(str(qrels_path), kind="trec"),
        ranx.Run.from_file(str(run_path), kind="trec"),
        list(names.values()),
    )
    for ours, theirs in names.items():
        assert result.metrics[ours] == pytest.approx(scores[theirs], abs=1e-6), ours


def test_trec_writer_rejects_ids_with_whitespace(tmp_path) -> None:
    run = pd.DataFrame({"query_id": ["q 1"], "doc_id": ["d1"], "rank": [1], "score": [0.5]})
    with pytest.raises(ValueError, match="'q 1'"):
        write_run(run, tmp_path / "x.run")


class CountingEncoder:
    """Embeds texts as fixed random unit vectors; counts documents encoded."""

    def __init__(self, texts: list[str], dim: int = 16) -> None:
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((len(texts), dim))
        self.vectors = dict(
            zip(texts, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32), strict=True)
        )
        self.documents_encoded = 0

    def identity(self) -> dict[str, object]:
        return {"source": "fake", "dim": 16}

    def encode(self, texts, kind, show_progress=False, batch_size=None) -> np.ndarray:
        if kind == "document":
            self.documents_encoded += len(texts)
        return np.stack([self.vectors[t] for t in texts])


def _targets() -> tuple[list[EvalTarget], list[str]]:
    corpus = [(f"d{i}", "", f"doc {i}") for i in range(50)]
    test = Dataset.build("t", "x", corpus, [("q1", "query 1"), ("q2", "query 2")], [("q1", "d1", 2), ("q1", "d2", 1),
                                                                                   ("q2", "d3", 1)])  # fmt: skip
    val = Dataset.build("v", "x", corpus, [("q3", "query 3")], [("q3", "d4", 1)])
    texts = [c[2] for c in corpus] + ["query 1", "query 2", "query 3"]
    return [EvalTarget("test", test, test.corpus), EvalTarget("val", val, val.corpus.copy())], texts


def test_stop_point_shares_corpus_embeddings_and_caches_step_zero(tmp_path) -> None:
    targets, texts = _targets()
    cfg = EvalConfig(ks=(1, 5, 10), run_depth=20)
    first_encoder = CountingEncoder(texts)
    first = evaluate_stop_point(first_encoder, targets, cfg, step=0, cache_dir=tmp_path, progress=False)
    assert first.cache_hits == {"test": False, "val": False}
    assert first_encoder.documents_encoded == 50  # val and test share the corpus: embedded once

    second_encoder = CountingEncoder(texts)
    second = evaluate_stop_point(second_encoder, targets, cfg, step=0, cache_dir=tmp_path, progress=False)
    assert second.cache_hits == {"test": True, "val": True} and second_encoder.documents_encoded == 0
    for name in ("test", "val"):
        assert second.results[name].metrics == first.results[name].metrics
        pd.testing.assert_frame_equal(second.results[name].per_query, first.results[name].per_query)
        pd.testing.assert_frame_equal(second.results[name].run, first.results[name].run)

    # Later stop points are never cached; a different evaluation view (document texts) is a different key.
    later = evaluate_stop_point(CountingEncoder(texts), targets, cfg, step=5, cache_dir=tmp_path, progress=False)
    assert later.cache_hits == {"test": False, "val": False}
    changed = [EvalTarget(t.name, t.split, t.docs.assign(text=t.docs["text"].str.upper())) for t in targets]
    upper = CountingEncoder([t.upper() if t.startswith("doc") else t for t in texts])
    other = evaluate_stop_point(upper, changed, cfg, step=0, cache_dir=tmp_path, progress=False)
    assert other.cache_hits == {"test": False, "val": False}


class SlowEncoder(CountingEncoder):
    """Takes a known time per document batch, so the computing time a cache hit reports can be checked."""

    def encode(self, texts, kind, show_progress=False, batch_size=None) -> np.ndarray:
        if kind == "document":
            time.sleep(0.3)
        return super().encode(texts, kind, show_progress, batch_size)


def test_step_zero_cache_hit_reports_the_computing_time_not_its_own(tmp_path) -> None:
    """A job whose step 0 comes from the cache still knows what an evaluation costs (its remaining-time estimate
    counts the stop points' evaluations): the hit returns the seconds the first job spent computing it."""
    targets, texts = _targets()
    cfg = EvalConfig(ks=(1, 5, 10), run_depth=20)
    first = evaluate_stop_point(SlowEncoder(texts), targets, cfg, step=0, cache_dir=tmp_path, progress=False)
    computed = first.compute_seconds()
    assert computed is not None and computed >= 0.3
    again = SlowEncoder(texts)
    second = evaluate_stop_point(again, targets, cfg, step=0, cache_dir=tmp_path, progress=False)
    assert again.documents_encoded == 0  # nothing was encoded ...
    assert second.compute_seconds() == pytest.approx(computed)  # ... yet it reports what computing took
    for entry in tmp_path.iterdir():  # an entry written before timings were kept: unknown, not zero
        (entry / "seconds.json").unlink()
        seal(entry)  # a sound entry of that kind (sealed as it is; an unsealed one is recomputed)
    third = evaluate_stop_point(SlowEncoder(texts), targets, cfg, step=0, cache_dir=tmp_path, progress=False)
    assert all(third.cache_hits.values()) and third.compute_seconds() is None
