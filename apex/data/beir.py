"""BEIR folder layout as a retrieval dataset.

    <folder>/corpus.jsonl      {"_id", "title" (optional, may be empty), "text"} per line
    <folder>/queries.jsonl     {"_id", "text"} per line: the queries of every split
    <folder>/qrels/<split>.tsv header "query-id<TAB>corpus-id<TAB>score", then one judgement per row

Each file may also be gzipped (`corpus.jsonl.gz`). A row with score <= 0 says "not relevant": it is skipped and
counted. Queries without a relevant document in the chosen split belong to other splits: skipped and counted. The
whole corpus is kept (documents without judgements are distractors).
"""

from __future__ import annotations

import logging
from pathlib import Path

from apex.core.errors import InputError
from apex.data.dataset import Dataset, make_corpus, make_qrels, make_queries
from apex.data.readers import find_file, get_id, get_text, iter_json_lines, iter_lines, require_dir

log = logging.getLogger("apex.data")

QRELS_HEADER = ("query-id", "corpus-id", "score")


def _read_corpus(path: Path) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_json_lines(path):
        record = f"line {lineno}"
        doc_id = get_id(obj, "_id", file=path, record=record)
        if doc_id in first_line:
            raise InputError(
                f"duplicate id {doc_id!r} (first on line {first_line[doc_id]})", file=path, record=record, field="_id"
            )
        first_line[doc_id] = lineno
        title = get_text(obj, "title", file=path, record=record, allow_empty=True) if "title" in obj else ""
        rows.append((doc_id, title, get_text(obj, "text", file=path, record=record)))
    return rows


def _read_queries(path: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_json_lines(path):
        record = f"line {lineno}"
        query_id = get_id(obj, "_id", file=path, record=record)
        if query_id in first_line:
            raise InputError(
                f"duplicate id {query_id!r} (first on line {first_line[query_id]})",
                file=path,
                record=record,
                field="_id",
            )
        first_line[query_id] = lineno
        rows.append((query_id, get_text(obj, "text", file=path, record=record)))
    return rows


def _read_qrels(path: Path, query_ids: set[str], doc_ids: set[str]) -> list[tuple[str, str, int]]:
    """Relevant (score > 0) judgements; every id must exist, and each (query, document) pair appear once."""
    rows: list[tuple[str, str, int]] = []
    first_line: dict[tuple[str, str], int] = {}
    n_not_relevant = n_blank = 0
    header_seen = False
    for lineno, line in iter_lines(path):
        record = f"line {lineno}"
        if not line.strip():
            n_blank += 1
            continue
        cells = line.split("\t")
        if not header_seen:
            if tuple(c.strip() for c in cells) != QRELS_HEADER:
                raise InputError(
                    f"expected the header {'<TAB>'.join(QRELS_HEADER)!r}, got {line!r}",
                    file=path,
                    record=record,
                    field="header",
                )
            header_seen = True
            continue
        if len(cells) != len(QRELS_HEADER):
            raise InputError(f"expected 3 tab-separated columns, got {len(cells)}: {line!r}", file=path, record=record)
        query_id, doc_id, score_text = (c.strip() for c in cells)
        try:
            score = int(score_text)
        except ValueError:
            raise InputError(
                f"score {score_text!r} is not an integer", file=path, record=record, field="score"
            ) from None
        if query_id not in query_ids:
            raise InputError(
                f"unknown query {query_id!r} (not in queries.jsonl)", file=path, record=record, field="query-id"
            )
        if doc_id not in doc_ids:
            raise InputError(
                f"unknown document {doc_id!r} (not in corpus.jsonl)", file=path, record=record, field="corpus-id"
            )
        if (query_id, doc_id) in first_line:
            raise InputError(
                f"duplicate judgement of ({query_id!r}, {doc_id!r}) (first on line {first_line[query_id, doc_id]})",
                file=path,
                record=record,
                field="corpus-id",
            )
        first_line[query_id, doc_id] = lineno
        if score <= 0:
            n_not_relevant += 1
            continue
        rows.append((query_id, doc_id, score))
    if not header_seen:
        raise InputError("is empty (expected a header row)", file=path, record="line 1", field="header")
    if n_not_relevant:
        log.info("%s: skipped %d judgements with score <= 0 (not relevant)", path, n_not_relevant)
    if n_blank:
        log.info("%s: skipped %d blank lines", path, n_blank)
    return rows


def read_beir_folder(folder: Path, splits: list[str]) -> tuple[list, list, dict[str, list]]:
    """(corpus rows, query rows, {split: relevant qrels rows}) of a BEIR folder, each file read and checked once.

    A split whose `qrels/<split>.tsv` is absent is left out of the dict (callers decide whether that is an error).
    """
    require_dir(folder)
    corpus_file, queries_file = find_file(folder, "corpus.jsonl"), find_file(folder, "queries.jsonl")
    corpus = _read_corpus(corpus_file)
    if not corpus:  # else every qrels row would be blamed for naming an unknown document
        raise InputError("holds no documents", file=corpus_file)
    queries = _read_queries(queries_file)
    if not queries:
        raise InputError("holds no queries", file=queries_file)
    qrels_dir = require_dir(folder / "qrels")
    query_ids, doc_ids = {q for q, _ in queries}, {d for d, _, _ in corpus}
    qrels = {}
    for split in splits:
        if (qrels_dir / f"{split}.tsv").exists() or (qrels_dir / f"{split}.tsv.gz").exists():
            qrels_file = find_file(qrels_dir, f"{split}.tsv")
            qrels[split] = _read_qrels(qrels_file, query_ids, doc_ids)
            if not qrels[split]:
                raise InputError(
                    "holds no relevant judgement (relevance > 0): its split would be empty", file=qrels_file
                )
    return corpus, queries, qrels


def beir_dataset(name: str, folder: Path, corpus: list, all_queries: list, qrels: list, split: str) -> Dataset:
    """The Dataset of one qrels split: the whole corpus, and the queries judged in that split."""
    judged = {q for q, _, _ in qrels}
    queries = [row for row in all_queries if row[0] in judged]
    if not queries:
        raise InputError(f"split {split!r} has no query with a relevant document left", file=folder / "qrels")
    if len(queries) < len(all_queries):
        log.info(
            "%s: skipped %d of %d queries with no relevant document in split %r",
            folder / "queries.jsonl",
            len(all_queries) - len(queries),
            len(all_queries),
            split,
        )
    ds = Dataset(name, make_corpus(corpus), make_queries(queries), make_qrels(qrels), str(folder))
    ds.validate()
    return ds


def load_beir(folder: Path, split: str = "test", name: str = "beir") -> Dataset:
    """Read a BEIR folder; the queries are those with a relevant document in `qrels/<split>.tsv`."""
    require_dir(folder)
    find_file(require_dir(folder / "qrels"), f"{split}.tsv")  # a missing split fails before the big files are read
    corpus, queries, qrels = read_beir_folder(folder, [split])
    return beir_dataset(name, folder, corpus, queries, qrels[split], split)


def load_corpus_only(path: Path, *, name: str = "corpus") -> Dataset:
    """A corpus with no queries (BEIR `corpus.jsonl` rows, in a folder or as the file itself).

    For `dataset.queries=llm`: the recipe has an LLM write one query per document after the split.
    """
    file = find_file(path, "corpus.jsonl") if path.is_dir() else path
    return Dataset.build(name, str(path), _read_corpus(file), [], [])
