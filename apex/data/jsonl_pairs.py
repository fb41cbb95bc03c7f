"""A JSONL file of (query, document) pairs as a retrieval dataset.

One object per line: `{"query": ..., "document": ..., "query_id"?: ..., "doc_id"?: ...}` (field names configurable).

Documents are identified by their text: identical document texts become one document (counted and logged). Its id
is the `doc_id` of the line that first holds that text, or `d<line>` when that line gives none. A later line may
repeat the text without an id, or with the same id; a different id for the same text, or one id for two
different texts, is an error.

Queries: a line with a `query_id` seen before adds a relevant document to that query (its text must match); a
line without one is a new query `q<line>`. Each (query, document) pair may appear once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from apex.core.errors import InputError
from apex.data.dataset import Dataset, make_corpus, make_qrels, make_queries
from apex.data.readers import get_id, get_text, iter_json_lines

log = logging.getLogger("apex.data")


def load_jsonl_pairs(
    path: Path,
    query_field: str = "query",
    document_field: str = "document",
    query_id_field: str = "query_id",
    doc_id_field: str = "doc_id",
    name: str = "jsonl_pairs",
) -> Dataset:
    """Read the pairs file; see the module docstring for how ids and duplicates are resolved."""
    doc_by_text: dict[str, str] = {}  # document text -> doc_id
    doc_line: dict[str, int] = {}  # doc_id -> line that introduced it
    corpus: list[tuple[str, str, str]] = []
    query_text: dict[str, str] = {}  # query_id -> text
    query_line: dict[str, int] = {}
    queries: list[tuple[str, str]] = []
    pair_line: dict[tuple[str, str], int] = {}
    qrels: list[tuple[str, str, int]] = []
    n_repeated_documents = 0

    for lineno, obj in iter_json_lines(path):
        record = f"line {lineno}"
        q_text = get_text(obj, query_field, file=path, record=record)
        d_text = get_text(obj, document_field, file=path, record=record)
        given_doc_id = get_id(obj, doc_id_field, file=path, record=record) if doc_id_field in obj else None

        if d_text in doc_by_text:
            doc_id = doc_by_text[d_text]
            n_repeated_documents += 1
            if given_doc_id is not None and given_doc_id != doc_id:
                raise InputError(
                    f"id {given_doc_id!r} given to a document text first seen as {doc_id!r} on line {doc_line[doc_id]}",
                    file=path,
                    record=record,
                    field=doc_id_field,
                )
        else:
            doc_id = given_doc_id if given_doc_id is not None else f"d{lineno}"
            if doc_id in doc_line:
                raise InputError(
                    f"duplicate id {doc_id!r}: line {doc_line[doc_id]} gave it a different document text",
                    file=path,
                    record=record,
                    field=doc_id_field,
                )
            doc_by_text[d_text] = doc_id
            doc_line[doc_id] = lineno
            corpus.append((doc_id, "", d_text))

        query_id = get_id(obj, query_id_field, file=path, record=record) if query_id_field in obj else f"q{lineno}"
        if query_id in query_text:
            if query_text[query_id] != q_text:
                raise InputError(
                    f"duplicate id {query_id!r}: line {query_line[query_id]} gave it a different query text",
                    file=path,
                    record=record,
                    field=query_id_field,
                )
        else:
            query_text[query_id] = q_text
            query_line[query_id] = lineno
            queries.append((query_id, q_text))

        if (query_id, doc_id) in pair_line:
            raise InputError(
                f"duplicate pair ({query_id!r}, {doc_id!r}), first on line {pair_line[query_id, doc_id]}",
                file=path,
                record=record,
                field=document_field,
            )
        pair_line[query_id, doc_id] = lineno
        qrels.append((query_id, doc_id, 1))

    if n_repeated_documents:
        log.info(
            "%s: %d lines repeat an earlier document text (merged into one document each)", path, n_repeated_documents
        )
    ds = Dataset(name, make_corpus(corpus), make_queries(queries), make_qrels(qrels), str(path))
    ds.validate()
    return ds
