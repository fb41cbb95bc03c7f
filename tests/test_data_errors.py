"""Every malformed input raises InputError naming the file, the line or record, and the field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from apex.core.errors import InputError
from apex.data import DatasetConfig, load_dataset


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


GOOD = {"query": "a question", "document": "a document"}

# name -> (file name, file content as str or bytes, expected record, expected field, fragment of the message)
PAIRS_CASES = {
    "missing field": ("p.jsonl", jsonl(GOOD, {"query": "q"}), "line 2", "document", "missing field"),
    "wrong type": ("p.jsonl", jsonl(GOOD, GOOD | {"document": 5}), "line 2", "document", "expected a string, got int"),
    "null text": ("p.jsonl", jsonl({"query": None, "document": "x"}), "line 1", "query", "got null"),
    "empty text": ("p.jsonl", jsonl(GOOD, GOOD, {"query": " \t", "document": "d"}), "line 3", "query", "empty"),
    "invalid json": ("p.jsonl", jsonl(GOOD, '{"query": "a", "document": }'), "line 2", None, "invalid JSON"),
    "not an object": ("p.jsonl", jsonl(GOOD, "[1, 2]"), "line 2", None, "expected a JSON object"),
    "invalid utf-8": ("p.jsonl", jsonl(GOOD, GOOD).encode() + b'{"query": "\xff"}\n', "line 3", None, "UTF-8"),
    "gz not gzip": ("p.jsonl.gz", jsonl(GOOD), None, None, "is not gzip"),
    "corrupt gzip": ("p.jsonl.gz", gzip.compress(jsonl(*[GOOD] * 200).encode())[:-30], None, None, "corrupt gzip"),
    "bad doc id type": ("p.jsonl", jsonl(GOOD | {"doc_id": 1.5}), "line 1", "doc_id", "string id"),
    "empty query id": ("p.jsonl", jsonl(GOOD | {"query_id": " "}), "line 1", "query_id", "empty"),
    "doc id reused": (
        "p.jsonl",
        jsonl(GOOD | {"doc_id": "D"}, {"query": "b", "document": "other", "doc_id": "D"}),
        "line 2",
        "doc_id",
        "duplicate id 'D'",
    ),
    "text under two ids": (
        "p.jsonl",
        jsonl(GOOD | {"doc_id": "D"}, GOOD | {"doc_id": "E", "query": "b"}),
        "line 2",
        "doc_id",
        "first seen as 'D' on line 1",
    ),
    "query id reused": (
        "p.jsonl",
        jsonl(GOOD | {"query_id": "Q"}, {"query": "other", "document": "x", "query_id": "Q"}),
        "line 2",
        "query_id",
        "duplicate id 'Q'",
    ),
    "duplicate pair": (
        "p.jsonl",
        jsonl(GOOD | {"query_id": "Q"}, GOOD | {"query_id": "Q"}),
        "line 2",
        "document",
        "duplicate pair",
    ),
}


@pytest.mark.parametrize("case", list(PAIRS_CASES))
def test_jsonl_pairs_errors(tmp_path, case):
    name, content, record, field, fragment = PAIRS_CASES[case]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    check(DatasetConfig.from_cfg({"name": "jsonl_pairs", "path": str(path)}), path, record, field, fragment)


def check(cfg: DatasetConfig, path: Path, record, field, fragment) -> None:
    with pytest.raises(InputError) as info:
        load_dataset(cfg)
    err = info.value
    assert err.file == str(path), str(err)
    if record is not None:
        assert err.record == record, str(err)
    assert err.field == field, str(err)
    assert fragment in str(err), str(err)
    assert str(path) in str(err)
    if record is not None:
        assert record in str(err)
    if field is not None:
        assert f"field '{field}'" in str(err)


def test_missing_file_and_folder(tmp_path):
    missing = tmp_path / "nope.jsonl"
    check(DatasetConfig.from_cfg({"name": "jsonl_pairs", "path": str(missing)}), missing, None, None, "does not exist")
    check(DatasetConfig.from_cfg({"name": "beir", "path": str(missing)}), missing, None, None, "does not exist")
    check(DatasetConfig.from_cfg({"path": str(missing)}), missing, None, None, "does not exist")
    check(DatasetConfig.from_cfg({"name": "jsonl_pairs", "path": str(tmp_path)}), tmp_path, None, None, "regular file")


# --- BEIR -------------------------------------------------------------------------------------------------------
CORPUS = jsonl({"_id": "d1", "title": "t", "text": "one"}, {"_id": "d2", "text": "two"})
QUERIES = jsonl({"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"})
HEADER = "query-id\tcorpus-id\tscore\n"
QRELS = HEADER + "q1\td1\t1\n"

# name -> ({relative file: content}, file that is named, record, field, fragment)
BEIR_CASES = {
    "duplicate doc id": (
        {"corpus.jsonl": CORPUS + jsonl({"_id": "d1", "text": "x"})},
        "corpus.jsonl",
        "line 3",
        "_id",
        "first on line 1",
    ),
    "duplicate query id": (
        {"queries.jsonl": QUERIES + jsonl({"_id": "q2", "text": "x"})},
        "queries.jsonl",
        "line 3",
        "_id",
        "duplicate id 'q2'",
    ),
    "doc text missing": (
        {"corpus.jsonl": jsonl({"_id": "d1", "title": "t"})},
        "corpus.jsonl",
        "line 1",
        "text",
        "missing field",
    ),
    "title wrong type": (
        {"corpus.jsonl": jsonl({"_id": "d1", "title": ["t"], "text": "x"})},
        "corpus.jsonl",
        "line 1",
        "title",
        "got list",
    ),
    "id missing": ({"queries.jsonl": jsonl({"text": "x"})}, "queries.jsonl", "line 1", "_id", "missing field"),
    "bad header": (
        {"qrels/test.tsv": "qid\tdid\tscore\nq1\td1\t1\n"},
        "qrels/test.tsv",
        "line 1",
        "header",
        "expected the header",
    ),
    "empty qrels": ({"qrels/test.tsv": ""}, "qrels/test.tsv", "line 1", "header", "is empty"),
    "two columns": (
        {"qrels/test.tsv": HEADER + "q1\td1\t1\nq2 d2\t1\n"},
        "qrels/test.tsv",
        "line 3",
        None,
        "3 tab-separated columns, got 2",
    ),
    "score not int": (
        {"qrels/test.tsv": HEADER + "q1\td1\thigh\n"},
        "qrels/test.tsv",
        "line 2",
        "score",
        "not an integer",
    ),
    "unknown doc": ({"qrels/test.tsv": QRELS + "q2\td9\t1\n"}, "qrels/test.tsv", "line 3", "corpus-id", "'d9'"),
    "unknown query": ({"qrels/test.tsv": QRELS + "q7\td2\t1\n"}, "qrels/test.tsv", "line 3", "query-id", "'q7'"),
    "duplicate judgement": (
        {"qrels/test.tsv": QRELS + "q1\td1\t2\n"},
        "qrels/test.tsv",
        "line 3",
        "corpus-id",
        "first on line 2",
    ),
    "invalid json": ({"corpus.jsonl": CORPUS + "{oops\n"}, "corpus.jsonl", "line 3", None, "invalid JSON"),
    "invalid utf-8": (
        {"queries.jsonl": QUERIES.encode() + b'{"_id": "q3", "text": "caf\xe9"}\n'},
        "queries.jsonl",
        "line 3",
        None,
        "invalid UTF-8",
    ),
    "missing corpus": ({"corpus.jsonl": None}, "corpus.jsonl", None, None, "does not exist"),
    "missing split": ({"qrels/test.tsv": None}, "qrels/test.tsv", None, None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BEIR_CASES))
def test_beir_errors(tmp_path, case):
    overrides, named, record, field, fragment = BEIR_CASES[case]
    files = {"corpus.jsonl": CORPUS, "queries.jsonl": QUERIES, "qrels/test.tsv": QRELS} | overrides
    (tmp_path / "qrels").mkdir()
    for rel, content in files.items():
        if content is not None:
            (tmp_path / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    check(DatasetConfig.from_cfg({"name": "beir", "path": str(tmp_path)}), tmp_path / named, record, field, fragment)


def test_beir_well_formed_case_loads(tmp_path):
    # The base files of the BEIR cases are valid: each case fails only because of its own defect.
    (tmp_path / "qrels").mkdir()
    for rel, content in {"corpus.jsonl": CORPUS, "queries.jsonl": QUERIES, "qrels/test.tsv": QRELS}.items():
        (tmp_path / rel).write_text(content)
    ds = load_dataset(DatasetConfig.from_cfg({"name": "beir", "path": str(tmp_path)}))
    assert ds.qrels.values.tolist() == [["q1", "d1", 1]]


# --- SQuAD ------------------------------------------------------------------------------------------------------
def squad(paragraphs, title="T"):
    return json.dumps({"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}, indent=1)


QA = {"id": "x1", "question": "why?", "answers": []}
SQUAD_CASES = {
    "top level list": ("s.json", "[]", "$", None, "JSON object"),
    "no data": ("s.json", '{"version": "1.1"}', "$", "data", "missing field"),
    "invalid json": ("s.json", '{"data": [\n{"title": "T",\n "paragraphs": [}\n]}', "line 3", None, "invalid JSON"),
    "empty context": ("s.json", squad([{"context": "  ", "qas": [QA]}]), "data[0].paragraphs[0]", "context", "empty"),
    "question not a string": (
        "s.json",
        squad([{"context": "c", "qas": [QA | {"question": 7}]}]),
        "data[0].paragraphs[0].qas[0]",
        "question",
        "got int",
    ),
    "qas not a list": (
        "s.json",
        squad([{"context": "c", "qas": {}}]),
        "data[0].paragraphs[0]",
        "qas",
        "expected a list",
    ),
    "title wrong type": ("s.json", squad([], title=None), "data[0]", "title", "got null"),
    "duplicate question id": (
        "s.json",
        squad([{"context": "c", "qas": [QA]}, {"context": "d", "qas": [QA]}]),
        "data[0].paragraphs[1].qas[0]",
        "id",
        "first at data[0].paragraphs[0].qas[0]",
    ),
    "invalid utf-8": ("s.json", b'{"data": [\n{"title": "\xc3\x28", "paragraphs": []}]}', "line 2", None, "UTF-8"),
    "gz not gzip": ("s.json.gz", squad([]), None, None, "is not gzip"),
}


@pytest.mark.parametrize("case", list(SQUAD_CASES))
def test_squad_errors(tmp_path, case):
    name, content, record, field, fragment = SQUAD_CASES[case]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    check(DatasetConfig.from_cfg({"name": "squad", "path": str(path)}), path, record, field, fragment)


@pytest.mark.parametrize("line_based", [True, False])
def test_invalid_utf8_names_the_byte_offset(tmp_path, line_based):
    from apex.data.readers import iter_lines, read_text

    good = b'{"a": 1}\n{"b": "caf'
    path = tmp_path / "f.jsonl"
    path.write_bytes(good + b'\xe9"}\n')
    with pytest.raises(InputError, match=rf"line 2: invalid UTF-8 at byte offset {len(good)} of the file") as err:
        list(iter_lines(path)) if line_based else read_text(path)
    assert "byte 10 of the line" in str(err.value)  # 0-based, as xxd and dd count


@pytest.mark.parametrize("packed", [False, True])
def test_a_line_over_the_reading_cap_is_refused_unread(tmp_path, packed):
    from apex.data.readers import iter_lines

    lines = [json.dumps({"query": "q", "document": "d" * 40}), json.dumps({"query": "q", "document": "d" * 400})]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / ("pairs.jsonl.gz" if packed else "pairs.jsonl")
    path.write_bytes(gzip.compress(data) if packed else data)
    assert [n for n, _ in iter_lines(path, max_line_bytes=500)] == [1, 2]  # both fit
    read = []
    with pytest.raises(InputError, match="line longer than 100 bytes") as err:
        for lineno, _ in iter_lines(path, max_line_bytes=100):
            read.append(lineno)
    assert read == [1] and err.value.record == "line 2" and str(path) in str(err.value)
