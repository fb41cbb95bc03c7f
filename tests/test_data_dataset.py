"""Dataset methods (fingerprint, validate, subset, first query per document) and DatasetConfig validation."""

from __future__ import annotations

import pandas as pd
import pytest

from apex.core.errors import InputError
from apex.data import LOADERS, Dataset, DatasetConfig


def tiny() -> Dataset:
    # q2 is relevant to d1 and d2; q3 only to d1; d3 has no query (a distractor).
    return Dataset.build(
        "tiny",
        "tiny.src",
        corpus=[("d1", "T1", "alpha text"), ("d2", "T2", "beta text"), ("d3", "", "gamma text")],
        queries=[("q1", "what is alpha"), ("q2", "alpha or beta"), ("q3", "alpha again")],
        qrels=[("q1", "d1", 1), ("q2", "d2", 1), ("q2", "d1", 2), ("q3", "d1", 1)],
    )


def test_fingerprint_known_value_is_stable_across_processes_and_versions():
    # Computed independently from the documented encoding (one JSON line per table header and per row); any
    # change of encoding, ordering or process-dependent hashing breaks this test.
    assert tiny().fingerprint() == "177d34e6dc75764b3b7daea03cd0d0f9f5b80afe4d02f876cef4c63af8726372"


def test_fingerprint_ignores_name_source_and_index_but_not_content_or_order():
    ds = tiny()
    base = ds.fingerprint()
    same = Dataset("other", ds.corpus.set_axis(range(10, 13)), ds.queries, ds.qrels, "elsewhere")
    assert same.fingerprint() == base
    one_char = ds.corpus.copy()
    one_char.loc[1, "text"] = "beta texT"
    assert Dataset("tiny", one_char, ds.queries, ds.qrels, "x").fingerprint() != base
    reordered = ds.queries.iloc[[1, 0, 2]].reset_index(drop=True)
    assert Dataset("tiny", ds.corpus, reordered, ds.qrels, "x").fingerprint() != base
    relevance = ds.qrels.assign(relevance=[1, 1, 1, 1])
    assert Dataset("tiny", ds.corpus, ds.queries, relevance, "x").fingerprint() != base
    # Moving a character across a cell boundary must change the digest (no ambiguous concatenation).
    shifted = ds.corpus.copy()
    shifted.loc[0, ["title", "text"]] = ["T1a", "lpha text"]
    assert Dataset("tiny", shifted, ds.queries, ds.qrels, "x").fingerprint() != base


def test_validate_names_source_record_and_field():
    ds = tiny()
    cases = [
        (ds.corpus.assign(doc_id=["d1", "d1", "d3"]), ds.queries, ds.qrels, "corpus row 1", "doc_id", "duplicate"),
        (ds.corpus.assign(text=["a", " \n", "c"]), ds.queries, ds.qrels, "corpus doc_id 'd2'", "text", "empty"),
        (ds.corpus, ds.queries.assign(text=["", "b", "c"]), ds.qrels, "queries query_id 'q1'", "text", "empty"),
        (ds.corpus, ds.queries, ds.qrels.assign(doc_id=["d1", "d9", "d1", "d1"]), "qrels row 1", "doc_id", "d9"),
        (ds.corpus, ds.queries, ds.qrels.assign(query_id=["q1", "q2", "q2", "qX"]), "qrels row 3", "query_id", "qX"),
        (ds.corpus, ds.queries, ds.qrels.assign(relevance=[1, 0, 1, 1]), "qrels row 1", "relevance", "> 0"),
        (ds.corpus, ds.queries, ds.qrels.iloc[:3], "queries query_id 'q3'", "query_id", "no relevant document"),
        (ds.corpus, ds.queries, pd.concat([ds.qrels, ds.qrels.iloc[:1]]), "qrels row 4", "doc_id", "duplicate"),
    ]
    for corpus, queries, qrels, record, field, fragment in cases:
        with pytest.raises(InputError) as info:
            Dataset("bad", corpus.reset_index(drop=True), queries, qrels.reset_index(drop=True), "bad.src").validate()
        err = info.value
        assert (err.file, err.record, err.field) == ("bad.src", record, field), str(err)
        assert fragment in str(err) and "bad.src" in str(err)


def test_subset_keeps_documents_their_qrels_and_queries_still_relevant():
    sub = tiny().subset(["d2", "d3"])
    assert sub.corpus["doc_id"].tolist() == ["d2", "d3"]  # corpus order, not argument order
    assert sub.qrels.values.tolist() == [["q2", "d2", 1]]
    assert sub.queries["query_id"].tolist() == ["q2"]
    sub.validate()
    with pytest.raises(ValueError, match="unknown doc_ids"):
        tiny().subset(["d1", "nope"])


def test_first_query_per_document_keeps_first_query_and_all_its_qrels(caplog):
    with caplog.at_level("INFO", logger="apex.data"):
        first = tiny().first_query_per_document()
    # d1's first query is q1, d2's is q2; q3 is dropped. q2 keeps its qrel to d1 (it is relevant there).
    assert first.queries["query_id"].tolist() == ["q1", "q2"]
    assert first.qrels.values.tolist() == [["q1", "d1", 1], ["q2", "d2", 1], ["q2", "d1", 2]]
    assert len(first.corpus) == 3
    assert "1 dropped" in caplog.text
    first.validate()


def test_build_gives_contract_dtypes_even_when_empty():
    ds = Dataset.build("empty", "e", corpus=[], queries=[], qrels=[])
    assert list(ds.corpus.columns) == ["doc_id", "title", "text"]
    assert str(ds.qrels["relevance"].dtype) == "int64"
    assert pd.api.types.is_string_dtype(ds.queries["query_id"])


def test_config_defaults_and_registry_names():
    cfg = DatasetConfig.from_cfg({})
    assert cfg == DatasetConfig()
    assert (cfg.name, cfg.path, cfg.query_mode, cfg.train_query_mode, cfg.split_seed) == (
        "squad",
        None,
        "first",
        "all",
        0,
    )
    assert cfg.splits == {"train": "rest", "val": 200, "test": 500}
    assert set(LOADERS) == {"squad", "beir", "jsonl_pairs", "corpus"}
    assert cfg.queries == "dataset"
    with pytest.raises(InputError, match="queries: llm"):
        DatasetConfig.from_cfg({"name": "corpus", "path": "c.jsonl"})
    ok = DatasetConfig.from_cfg({"name": "beir", "path": "x", "splits": {"train": 0.5, "val": 10, "test": "rest"}})
    assert ok.splits == {"train": 0.5, "val": 10, "test": "rest"}


@pytest.mark.parametrize(
    ("mapping", "field", "fragment"),
    [
        ({"nme": "squad"}, "nme", "unknown key"),
        ({"name": "msmarco"}, "name", "not one of"),
        ({"query_mode": "some"}, "query_mode", "not one of"),
        ({"train_query_mode": 1}, "train_query_mode", "expected a string"),
        ({"name": "beir"}, "path", "bundled"),
        ({"path": 3}, "path", "expected str or null"),
        ({"split_seed": True}, "split_seed", "integer"),
        ({"max_documents": 0}, "max_documents", ">= 1"),
        ({"splits": {"train": "rest", "val": 1}}, "splits", "exactly the keys"),
        ({"splits": {"train": "rest", "val": "rest", "test": 1}}, "splits", "at most one"),
        ({"splits": {"train": "rest", "val": -1, "test": 1}}, "splits", "val: -1"),
        ({"splits": {"train": 1.5, "val": 1, "test": 1}}, "splits", "train: 1.5"),
        ({"splits": [1, 2, 3]}, "splits", "mapping"),
    ],
)
def test_config_errors_name_the_key(mapping, field, fragment):
    with pytest.raises(InputError) as info:
        DatasetConfig.from_cfg(mapping, source="params.yaml")
    err = info.value
    assert (err.file, err.record, err.field) == ("params.yaml", "dataset", field)
    assert fragment in str(err)


def test_config_accepts_an_omegaconf_section():
    from omegaconf import OmegaConf

    section = OmegaConf.create({"name": "squad", "path": None, "splits": {"train": "rest", "val": 0.1, "test": 500}})
    cfg = DatasetConfig.from_cfg(section)
    assert cfg.splits == {"train": "rest", "val": 0.1, "test": 500} and type(cfg.splits) is dict


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"name": "squad", "beir_split": "train"}, "dataset.beir_split"),  # a beir key under squad: not ignored
        ({"name": "beir", "path": "x", "query_field": "q"}, "dataset.query_field"),
        ({"name": "jsonl_pairs", "path": "x", "split": "given"}, "dataset.split"),
        ({"name": "corpus", "path": "x"}, "dataset.queries"),
    ],
)
def test_a_key_of_another_format_is_an_error(section: dict, named: str) -> None:
    from apex.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        DatasetConfig.from_cfg(section)
    assert info.value.key == named
    assert DatasetConfig.from_cfg({"name": "beir", "path": "x", "beir_split": "train"}).beir_split == "train"
