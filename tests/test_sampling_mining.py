"""mine_negatives end to end on random vectors: agreement with brute force, positives, quotas, seeds, outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_sampling_fakes import config, random_tables

from apex.core.errors import InputError
from apex.sampling import mine_negatives, write_outputs
from apex.sampling.candidates import Positives, lowest_positive_score, positive_mask, score_candidates
from apex.sampling.samplers.random import _skip_positives


def brute_force_ranking(queries: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full (Q, N) score matrix and each row's stable descending order: the reference for chunked scoring."""
    full = queries @ documents.T
    return full, np.argsort(-full, axis=1, kind="stable")


def vectors(encoder, queries, documents):
    q = np.stack([encoder.vectors["query"][t] for t in queries["text"]])
    d = np.stack([encoder.vectors["document"][t] for t in documents["text"]])
    return q, d


def mine(tables, tmp_path, seed=0, **overrides):
    queries, documents, qrels, encoder = tables
    cfg = config(**overrides)
    return mine_negatives(queries, documents, qrels, encoder, cfg, cache_dir=tmp_path, view="plain", seed=seed)


@pytest.fixture(scope="module")
def tables():
    return random_tables(n_queries=40, n_docs=300, dim=32, seed=7, positives_per_query=3)


def test_chunked_scoring_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((37, 12)).astype(np.float32)
    d = rng.standard_normal((301, 12)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    scores, indices, backend = score_candidates(q, d, 50, query_chunk_size=8, doc_chunk_size=29)
    full, order = brute_force_ranking(q, d)
    assert backend == "exact" and indices.shape == (37, 50)
    np.testing.assert_array_equal(indices, order[:, :50])
    np.testing.assert_allclose(scores, np.take_along_axis(full, order[:, :50], axis=1), atol=1e-5)


def test_faiss_backend_agrees_with_exact() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(4)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    d = rng.standard_normal((150, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    exact = score_candidates(q, d, 30, query_chunk_size=7)
    fast = score_candidates(q, d, 30, backend="faiss", query_chunk_size=7)
    assert fast[2] == "faiss"
    np.testing.assert_array_equal(fast[1], exact[1])  # no ties among random floats
    np.testing.assert_allclose(fast[0], exact[0], atol=1e-5)


def test_positive_mask_and_positive_scores_match_a_loop() -> None:
    rng = np.random.default_rng(5)
    q = rng.standard_normal((6, 4)).astype(np.float32)
    d = rng.standard_normal((20, 4)).astype(np.float32)
    lists = [[3], [0, 19], [7, 8, 9], [5], [19], [1, 2]]
    positives = Positives(np.cumsum([0] + [len(x) for x in lists]), np.concatenate(lists))
    indices = rng.integers(0, 20, (6, 10))
    expected = np.array([[i in lists[row] for i in indices[row]] for row in range(6)])
    np.testing.assert_array_equal(positive_mask(indices, positives, 20), expected)
    lowest = [min(float(q[r] @ d[i]) for i in lists[r]) for r in range(6)]
    np.testing.assert_allclose(lowest_positive_score(q, d, positives), lowest, atol=1e-5)


def test_skip_positives_is_a_bijection_onto_the_non_positives() -> None:
    positives = np.array([0, 4, 5, 9])
    mapped = _skip_positives(np.arange(10 - positives.size), positives)
    assert mapped.tolist() == [1, 2, 3, 6, 7, 8]


@pytest.mark.parametrize("name", ["model_aware", "hard_only", "random"])
def test_no_labelled_positive_is_ever_a_negative(tables, tmp_path, name) -> None:
    # Guard off, so only the positive exclusion stands between a positive and the negatives table.
    qrels = tables[2]
    n_soft = 0 if name == "hard_only" else 20
    result = mine(
        tables, tmp_path, name=name, n_hard=20, n_soft=n_soft, n_random=50, guard={"max_relative_to_positive": None}
    )
    pairs = set(zip(result.negatives["query_id"], result.negatives["doc_id"], strict=True))
    assert pairs and not pairs & set(zip(qrels["query_id"], qrels["doc_id"], strict=True))
    assert not result.negatives.duplicated(["query_id", "doc_id"]).any()


def test_model_aware_quotas_scores_and_ranks_agree_with_brute_force(tmp_path) -> None:
    # One positive per query: with several, a weak positive lowers the guard's ceiling and empties the hard band.
    tables = random_tables(n_queries=40, n_docs=300, dim=32, seed=8)
    queries, documents, _, encoder = tables
    result = mine(tables, tmp_path, n_hard=2, n_soft=3)
    neg = result.negatives
    assert result.stats["shortages"]["hard"]["slots_short"] == 0 == result.stats["shortages"]["soft"]["slots_short"]
    assert (neg.groupby("query_id")["band"].value_counts().unstack().loc[:, ["hard", "soft"]] == [2, 3]).all().all()
    assert neg.query("band == 'hard'")["rank"].between(1, 10).all()
    assert neg.query("band == 'soft'")["rank"].between(30, 100).all()
    q, d = vectors(encoder, queries, documents)
    full, order = brute_force_ranking(q, d)
    q_row = neg["query_id"].str[1:].astype(int).to_numpy()
    d_row = neg["doc_id"].str[1:].astype(int).to_numpy()
    np.testing.assert_allclose(neg["score"], full[q_row, d_row], atol=1e-5)
    true_rank = np.argsort(order, axis=1)[q_row, d_row] + 1  # position of the document in the stable ranking
    np.testing.assert_array_equal(neg["rank"], true_rank)
    assert neg["score"].dtype == np.float32 and neg["rank"].dtype == np.int64
    # Sorted by query (table order), then rank.
    assert neg.equals(
        neg.sort_values(
            ["query_id", "rank"], key=lambda s: s.str[1:].astype(int) if s.name == "query_id" else s, kind="stable"
        )
    )


def test_hard_only_takes_the_top_eligible_and_ignores_the_seed(tables, tmp_path) -> None:
    first = mine(tables, tmp_path, seed=0, name="hard_only", n_hard=4, n_soft=0)
    second = mine(tables, tmp_path, seed=99, name="hard_only", n_hard=4, n_soft=0)
    pd.testing.assert_frame_equal(first.negatives, second.negatives)
    queries, documents, qrels, encoder = tables
    q, d = vectors(encoder, queries, documents)
    full, order = brute_force_ranking(q, d)
    positives = qrels.groupby("query_id")["doc_id"].apply(set).to_dict()
    for row, query_id in enumerate(queries["query_id"]):
        p = min(full[row, int(x[1:])] for x in positives[query_id])
        top = order[row, :100]  # candidate_k
        eligible = [f"d{i}" for i in top if f"d{i}" not in positives[query_id] and full[row, i] <= 0.95 * p]
        assert list(first.negatives.query("query_id == @query_id")["doc_id"]) == eligible[:4]


def test_random_negatives_have_true_scores_and_ranks(tables, tmp_path) -> None:
    queries, documents, _, encoder = tables
    result = mine(tables, tmp_path, name="random", n_random=6)
    neg = result.negatives
    assert (neg.groupby("query_id").size() == 6).all() and set(neg["band"]) == {"random"}
    q, d = vectors(encoder, queries, documents)
    full, order = brute_force_ranking(q, d)
    q_row = neg["query_id"].str[1:].astype(int).to_numpy()
    d_row = neg["doc_id"].str[1:].astype(int).to_numpy()
    np.testing.assert_allclose(neg["score"], full[q_row, d_row], atol=1e-5)
    np.testing.assert_array_equal(neg["rank"], np.argsort(order, axis=1)[q_row, d_row] + 1)


@pytest.mark.parametrize("name", ["model_aware", "random"])
def test_same_seed_same_negatives_other_seed_other_negatives(tables, tmp_path, name) -> None:
    a = mine(tables, tmp_path, seed=11, name=name).negatives
    b = mine(tables, tmp_path, seed=11, name=name).negatives
    c = mine(tables, tmp_path, seed=12, name=name).negatives
    pd.testing.assert_frame_equal(a, b)
    assert set(zip(a["query_id"], a["doc_id"], strict=True)) != set(zip(c["query_id"], c["doc_id"], strict=True))


def test_chunk_sizes_do_not_change_the_result(tables, tmp_path) -> None:
    small = mine(tables, tmp_path, seed=5, query_chunk_size=3, doc_chunk_size=17).negatives
    large = mine(tables, tmp_path, seed=5).negatives
    pd.testing.assert_frame_equal(small, large)


def test_queries_without_positive_are_skipped_and_counted(tables, tmp_path) -> None:
    queries, documents, qrels, encoder = tables
    qrels = qrels[qrels["query_id"] != "q3"]
    result = mine_negatives(queries, documents, qrels, encoder, config(), cache_dir=tmp_path, view="plain", seed=0)
    assert result.stats["queries_without_positive"] == 1 and "q3" not in set(result.negatives["query_id"])
    assert result.stats["n_queries_used"] == 39


def test_bad_tables_raise_input_errors_naming_the_place(tables, tmp_path) -> None:
    queries, documents, qrels, encoder = tables
    bad_qrels = pd.concat([qrels, pd.DataFrame({"query_id": ["q1"], "doc_id": ["nope"], "relevance": [1]})])
    with pytest.raises(InputError, match=r"qrels table: 120: field 'doc_id': unknown id 'nope'"):
        mine_negatives(queries, documents, bad_qrels, encoder, config(), cache_dir=tmp_path, view="plain", seed=0)
    doubled = pd.concat([documents, documents.iloc[[5]]], ignore_index=True)
    with pytest.raises(InputError, match=r"documents table: 300: field 'doc_id': duplicate id 'd5'"):
        mine_negatives(queries, doubled, qrels, encoder, config(), cache_dir=tmp_path, view="plain", seed=0)
    with pytest.raises(InputError, match="field 'text'"):
        mine_negatives(
            queries.drop(columns="text"), documents, qrels, encoder, config(), cache_dir=tmp_path, view="plain", seed=0
        )


def test_stats_and_outputs_round_trip(tables, tmp_path) -> None:
    result = mine(tables, tmp_path / "cache")
    stats = result.stats
    assert sum(stats["selected"].values()) == len(result.negatives) == stats["negatives"]
    hist = stats["histograms"]
    assert len(hist["bin_edges"]) == 41
    for band, count in stats["selected"].items():
        assert sum(hist["selected"][band]) == count
    assert sum(hist["candidates"]["hard"]) == stats["bands"]["hard"]["members"]
    paths = write_outputs(result, tmp_path / "out")
    assert [p.name for p in paths] == ["negatives.parquet", "sampler_stats.json", "sampler_score_histogram.png"]
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), result.negatives, check_dtype=False)
    assert pd.read_parquet(paths[0])["score"].dtype == np.float32
    assert json.loads(paths[1].read_text())["negatives"] == len(result.negatives)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_in_batch_outputs_are_empty_but_complete(tables, tmp_path) -> None:
    queries, documents, qrels, _ = tables
    result = mine_negatives(
        queries, documents, qrels, None, config(name="in_batch"), cache_dir=tmp_path, view="plain", seed=0
    )
    paths = write_outputs(result, tmp_path / "out")
    assert pd.read_parquet(paths[0]).empty and json.loads(paths[1].read_text())["sampler"] == "in_batch"
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
