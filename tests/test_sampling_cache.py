"""The base-embedding cache: hit when nothing the vectors depend on changed, miss (re-encode) when anything did."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from test_sampling_fakes import FakeEncoder, config, random_tables

from apex.sampling import BaseEmbeddingCache, mine_negatives


@pytest.fixture
def tables():
    return random_tables(n_queries=12, n_docs=60, dim=8, seed=1)


def with_identity(encoder: FakeEncoder, **changes) -> FakeEncoder:
    identity = {**encoder.identity(), **changes}
    return FakeEncoder(encoder.vectors["query"], encoder.vectors["document"], identity)


def test_miss_then_hit_returns_the_same_vectors(tmp_path, tables, caplog) -> None:
    queries, documents, _, encoder = tables
    cache = BaseEmbeddingCache(tmp_path)
    with caplog.at_level(logging.INFO, logger="apex.sampling"):
        first = cache.load_or_encode(encoder, queries, documents, view="plain")
        second = cache.load_or_encode(encoder, queries, documents, view="plain")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert encoder.calls == 2  # queries + documents, once
    np.testing.assert_array_equal(first.queries, second.queries)
    np.testing.assert_array_equal(first.documents, second.documents)
    assert "base embeddings: cache miss" in caplog.text and "base embeddings: cache hit" in caplog.text
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["key"] == first.key and manifest["n_documents"] == 60 and manifest["view"] == "plain"
    assert [p.name for p in tmp_path.iterdir() if p.name != ".locks"] == [first.key]  # no temporary folder left


@pytest.mark.parametrize(
    "change",
    ["model_source", "pooling", "weights", "view", "document_text", "query_text", "document_id", "document_order"],
)
def test_anything_the_vectors_depend_on_invalidates(tmp_path, tables, change) -> None:
    queries, documents, _, encoder = tables
    cache = BaseEmbeddingCache(tmp_path)
    cache.load_or_encode(encoder, queries, documents, view="plain")
    view, other = "plain", encoder
    if change == "model_source":
        other = with_identity(encoder, source="another-model")
    elif change == "pooling":
        other = with_identity(encoder, pooling="cls")
    elif change == "weights":
        other = with_identity(encoder, weights="1")
    elif change == "view":
        view = "map"
    elif change == "document_text":
        other.vectors["document"]["doc 0 edited"] = other.vectors["document"]["doc 0"]
        documents = documents.assign(text=["doc 0 edited", *documents["text"].iloc[1:]])
    elif change == "query_text":
        other.vectors["query"]["query 0 edited"] = other.vectors["query"]["query 0"]
        queries = queries.assign(text=["query 0 edited", *queries["text"].iloc[1:]])
    elif change == "document_id":
        documents = documents.assign(doc_id=["renamed", *documents["doc_id"].iloc[1:]])
    elif change == "document_order":
        documents = documents.iloc[::-1].reset_index(drop=True)
    calls_before = other.calls
    again = cache.load_or_encode(other, queries, documents, view=view)
    assert not again.cache_hit
    assert other.calls == calls_before + 2


def test_reordered_documents_get_their_own_vectors(tmp_path, tables) -> None:
    queries, documents, _, encoder = tables
    cache = BaseEmbeddingCache(tmp_path)
    forward = cache.load_or_encode(encoder, queries, documents, view="plain")
    backward = cache.load_or_encode(encoder, queries, documents.iloc[::-1].reset_index(drop=True), view="plain")
    np.testing.assert_array_equal(backward.documents, forward.documents[::-1])


def test_seeds_and_sampler_settings_reuse_the_cache(tmp_path, tables) -> None:
    queries, documents, qrels, encoder = tables
    results = [
        mine_negatives(queries, documents, qrels, encoder, cfg, cache_dir=tmp_path, view="plain", seed=seed)
        for cfg, seed in [
            (config(), 0),
            (config(), 1),
            (config(n_hard=3, n_soft=1), 0),
            (config(name="hard_only", n_hard=4, n_soft=0), 2),
            (config(name="random"), 3),
        ]
    ]
    assert [r.cache_hit for r in results] == [False, True, True, True, True]
    assert [r.stats["cache_hit"] for r in results] == [False, True, True, True, True]
    assert encoder.calls == 2


def test_damaged_entry_is_recomputed(tmp_path, tables) -> None:
    queries, documents, _, encoder = tables
    cache = BaseEmbeddingCache(tmp_path)
    first = cache.load_or_encode(encoder, queries, documents, view="plain")
    (first.path / "documents.npy").write_bytes(b"not an array")
    second = cache.load_or_encode(encoder, queries, documents, view="plain")
    assert not second.cache_hit and encoder.calls == 4
    assert cache.load_or_encode(encoder, queries, documents, view="plain").cache_hit  # rewritten whole


def test_encoder_breaking_its_promise_is_refused(tmp_path, tables) -> None:
    queries, documents, _, encoder = tables
    encoder.vectors["document"]["doc 3"] = encoder.vectors["document"]["doc 3"] * 2.0
    with pytest.raises(ValueError, match="non-unit vector for documents row 3"):
        BaseEmbeddingCache(tmp_path).load_or_encode(encoder, queries, documents, view="plain")
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]  # nothing half-written


def test_in_batch_encodes_nothing(tmp_path, tables) -> None:
    queries, documents, qrels, _ = tables

    class Refuses:
        def encode(self, *args, **kwargs):
            raise AssertionError("in_batch must not encode")

        def identity(self):
            raise AssertionError("in_batch must not ask for the model")

    result = mine_negatives(
        queries, documents, qrels, Refuses(), config(name="in_batch"), cache_dir=tmp_path, view="plain", seed=0
    )
    assert result.negatives.empty and list(result.negatives.columns) == ["query_id", "doc_id", "band", "score", "rank"]
    assert not result.cache_hit and not result.stats["encoded"]
    assert not any(tmp_path.iterdir())
