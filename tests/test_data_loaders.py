"""Loaders on the bundled SQuAD dev set and on small BEIR / JSONL files with known tables."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from apex.core.errors import InputError
from apex.data import BUNDLED_SQUAD, DatasetConfig, load_dataset
from apex.data.bundled import verified_bundled_squad
from apex.data.squad import load_squad


@pytest.fixture(scope="module")
def squad_all():
    return load_dataset(DatasetConfig.from_cfg({"query_mode": "all"}))


def test_bundled_squad_has_published_counts(squad_all):
    assert squad_all.counts() == {"documents": 2067, "queries": 10570, "qrels": 10570}
    assert squad_all.corpus["doc_id"].iloc[0] == "0-0"
    assert squad_all.source == "bundled:squad-v1.1-dev.json.gz"
    assert squad_all.corpus["title"].nunique() == 48
    assert squad_all.qrels["relevance"].eq(1).all()
    first = load_dataset(DatasetConfig.from_cfg({}))  # default query_mode: first
    assert first.counts() == {"documents": 2067, "queries": 2067, "qrels": 2067}


def test_first_mode_is_the_first_question_of_each_paragraph(squad_all):
    raw = json.loads(gzip.decompress(BUNDLED_SQUAD.read_bytes()))
    expected = [
        (p["qas"][0]["id"], f"{a}-{i}") for a, art in enumerate(raw["data"]) for i, p in enumerate(art["paragraphs"])
    ]
    first = squad_all.first_query_per_document()
    assert list(zip(first.qrels["query_id"], first.qrels["doc_id"], strict=True)) == expected
    assert first.queries["query_id"].tolist() == [q for q, _ in expected]
    assert first.queries["text"].iloc[0] == "Which NFL team represented the AFC at Super Bowl 50?"


def test_bundled_sha256_is_checked(tmp_path):
    assert verified_bundled_squad() == BUNDLED_SQUAD
    damaged = tmp_path / "squad.json.gz"
    data = bytearray(BUNDLED_SQUAD.read_bytes())
    data[-20] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        verified_bundled_squad(damaged)
    assert info.value.field == "sha256" and "does not match" in str(info.value)


def test_squad_plain_json_file(tmp_path):
    path = tmp_path / "mini.json"
    data = {
        "data": [
            {"title": "A", "paragraphs": [{"context": "ctx a0", "qas": [{"id": "x", "question": "qx"}]}]},
            {
                "title": "B",
                "paragraphs": [
                    {"context": "ctx b0", "qas": []},
                    {"context": "ctx b1", "qas": [{"id": "y", "question": "qy"}, {"id": "z", "question": "qz"}]},
                ],
            },
        ]
    }
    path.write_text(json.dumps(data))
    ds = load_squad(path)
    assert ds.corpus.values.tolist() == [["0-0", "A", "ctx a0"], ["1-0", "B", "ctx b0"], ["1-1", "B", "ctx b1"]]
    assert ds.queries.values.tolist() == [["x", "qx"], ["y", "qy"], ["z", "qz"]]
    assert ds.qrels.values.tolist() == [["x", "0-0", 1], ["y", "1-1", 1], ["z", "1-1", 1]]


def write_jsonl(path, rows, compress=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def make_beir(folder, compress_corpus=False):
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "One", "text": "first doc"},
        {"_id": "d2", "text": "second doc"},  # no title: read as ""
        {"_id": 3, "title": "", "text": "third doc"},  # integer id: read as "3"
    ]
    write_jsonl(folder / ("corpus.jsonl.gz" if compress_corpus else "corpus.jsonl"), corpus, compress_corpus)
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": f"query {i}"} for i in range(1, 5)])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\t3\t2\nq2\td1\t1\n\nq4\td2\t0\n"
    )
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td2\t1\n")


@pytest.mark.parametrize("compress", [False, True])
def test_beir_folder_gives_known_tables(tmp_path, caplog, compress):
    make_beir(tmp_path, compress_corpus=compress)
    with caplog.at_level("INFO", logger="apex.data"):
        ds = load_dataset(DatasetConfig.from_cfg({"name": "beir", "path": str(tmp_path), "query_mode": "all"}))
    assert ds.corpus.values.tolist() == [["d1", "One", "first doc"], ["d2", "", "second doc"], ["3", "", "third doc"]]
    assert ds.queries.values.tolist() == [["q1", "query 1"], ["q2", "query 2"]]  # q3: train only; q4: score 0 only
    assert ds.qrels.values.tolist() == [["q1", "d1", 1], ["q2", "3", 2], ["q2", "d1", 1]]
    assert "skipped 2 judgements with score <= 0" in caplog.text
    assert "skipped 2 of 4 queries" in caplog.text

    train = load_dataset(DatasetConfig.from_cfg({"name": "beir", "path": str(tmp_path), "beir_split": "train"}))
    assert train.qrels.values.tolist() == [["q3", "d2", 1]]


def test_jsonl_pairs_gives_known_tables(tmp_path, caplog):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"q": "who a", "doc": "text A"},
        {"q": "who b", "doc": "text B", "doc_id": "B"},
        {"q": "again a", "doc": "text A"},  # same document text as line 1: one document
        {"q": "multi", "doc": "text C", "query_id": "m"},
        {"q": "multi", "doc": "text B", "query_id": "m"},  # same query id: a second relevant document
    ]
    write_jsonl(path, rows)
    with path.open("a") as fh:
        fh.write("\n")  # a trailing blank line is not a record
    cfg = {"name": "jsonl_pairs", "path": str(path), "query_field": "q", "document_field": "doc", "query_mode": "all"}
    with caplog.at_level("INFO", logger="apex.data"):
        ds = load_dataset(DatasetConfig.from_cfg(cfg))
    assert ds.corpus.values.tolist() == [["d1", "", "text A"], ["B", "", "text B"], ["d4", "", "text C"]]
    assert ds.queries.values.tolist() == [["q1", "who a"], ["q2", "who b"], ["q3", "again a"], ["m", "multi"]]
    assert ds.qrels.values.tolist() == [
        ["q1", "d1", 1],
        ["q2", "B", 1],
        ["q3", "d1", 1],
        ["m", "d4", 1],
        ["m", "B", 1],
    ]
    assert "2 lines repeat an earlier document text" in caplog.text
    first = load_dataset(DatasetConfig.from_cfg({**cfg, "query_mode": "first"}))
    assert first.queries["query_id"].tolist() == ["q1", "q2", "m"]


def test_empty_pairs_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(InputError, match="no documents"):
        load_dataset(DatasetConfig.from_cfg({"name": "jsonl_pairs", "path": str(path)}))


def test_squad_loader_reads_a_copy_of_the_bundled_file_under_any_name(tmp_path):
    copy = tmp_path / "dev.json.gz"
    shutil.copy(BUNDLED_SQUAD, copy)
    ds = load_dataset(DatasetConfig.from_cfg({"path": str(copy)}))
    assert ds.counts()["queries"] == 2067 and ds.source == str(copy)
