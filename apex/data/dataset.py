"""The `Dataset`: a corpus, its queries and the relevance judgements (qrels) that join them.

Tables (pandas DataFrames, each with a fresh RangeIndex):

- corpus:  doc_id (str, unique), title (str, may be empty), text (str, non-empty)
- queries: query_id (str, unique, file order kept), text (str, non-empty)
- qrels:   query_id (str), doc_id (str), relevance (int > 0); each (query_id, doc_id) pair once

A query q is *relevant* to document d when qrels holds a row (q, d, r) with r > 0. Every query has at least one
relevant document; a document may have none (it is then a distractor for retrieval).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from apex.core.errors import InputError

log = logging.getLogger("apex.data")

CORPUS_COLUMNS: tuple[str, ...] = ("doc_id", "title", "text")
QUERIES_COLUMNS: tuple[str, ...] = ("query_id", "text")
QRELS_COLUMNS: tuple[str, ...] = ("query_id", "doc_id", "relevance")
TABLES: dict[str, tuple[str, ...]] = {"corpus": CORPUS_COLUMNS, "queries": QUERIES_COLUMNS, "qrels": QRELS_COLUMNS}


def _str_column(values: Iterable[str]) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def _columns(rows: Iterable[tuple], width: int) -> list[tuple]:
    """Transpose rows into `width` columns (empty columns when there are no rows)."""
    rows = list(rows)
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


def make_corpus(rows: Iterable[tuple[str, str, str]]) -> pd.DataFrame:
    """Corpus table from (doc_id, title, text) rows, with the contract's dtypes even when empty."""
    ids, titles, texts = _columns(rows, 3)
    return pd.DataFrame({"doc_id": _str_column(ids), "title": _str_column(titles), "text": _str_column(texts)})


def make_queries(rows: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """Queries table from (query_id, text) rows."""
    ids, texts = _columns(rows, 2)
    return pd.DataFrame({"query_id": _str_column(ids), "text": _str_column(texts)})


def make_qrels(rows: Iterable[tuple[str, str, int]]) -> pd.DataFrame:
    """Qrels table from (query_id, doc_id, relevance) rows."""
    qids, dids, rels = _columns(rows, 3)
    return pd.DataFrame(
        {"query_id": _str_column(qids), "doc_id": _str_column(dids), "relevance": pd.Series(rels, dtype="int64")}
    )


@dataclass
class Dataset:
    """Corpus, queries and qrels of one data source (`source`: the file or folder they came from)."""

    name: str
    corpus: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame
    source: str

    @classmethod
    def build(
        cls,
        name: str,
        source: str,
        corpus: list[tuple[str, str, str]],
        queries: list[tuple[str, str]],
        qrels: list[tuple[str, str, int]],
    ) -> Dataset:
        """A validated Dataset from plain row lists (handy in tests and small loaders)."""
        ds = cls(name, make_corpus(corpus), make_queries(queries), make_qrels(qrels), source)
        ds.validate()
        return ds

    def counts(self) -> dict[str, int]:
        return {"documents": len(self.corpus), "queries": len(self.queries), "qrels": len(self.qrels)}

    def fingerprint(self) -> str:
        """sha256 (hex) over the three tables' content, in row order.

        Each table contributes its name and column names, then one JSON array per row (JSON escapes newlines and
        quotes, so the byte stream parses back to exactly one sequence of rows: no two different tables hash the
        same input). Values are converted to plain Python str/int first, so the digest depends neither on the
        process (no `hash()`), nor on pandas dtypes, nor on the index. `name` and `source` are not content.
        """
        digest = hashlib.sha256()
        for table_name, columns in TABLES.items():
            table: pd.DataFrame = getattr(self, table_name)
            digest.update(json.dumps([table_name, list(columns), len(table)]).encode("utf-8") + b"\n")
            values = [table[c].tolist() for c in columns]
            for row in zip(*values, strict=True):
                digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        return digest.hexdigest()

    def validate(self) -> None:
        """Raise InputError (naming `source`, the record and the field) unless the tables meet the contract."""
        for table_name, columns in TABLES.items():
            table: pd.DataFrame = getattr(self, table_name)
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise InputError(f"{table_name} table lacks columns {missing}", file=self.source, field=missing[0])
            for column in columns:
                if column == "relevance":
                    continue
                bad = table[column].map(lambda v: not isinstance(v, str))
                if bad.any():
                    row = int(bad.to_numpy().nonzero()[0][0])
                    raise InputError(
                        f"is not a string: {table[column].iloc[row]!r}",
                        file=self.source,
                        record=f"{table_name} row {row}",
                        field=column,
                    )
        self._check_unique(self.corpus, "corpus", ["doc_id"])
        self._check_unique(self.queries, "queries", ["query_id"])
        self._check_unique(self.qrels, "qrels", ["query_id", "doc_id"])
        self._check_text(self.corpus, "corpus", "doc_id")
        self._check_text(self.queries, "queries", "query_id")
        self._check_qrels()

    def _check_unique(self, table: pd.DataFrame, table_name: str, key: list[str]) -> None:
        dup = table.duplicated(subset=key)
        if dup.any():
            row = int(dup.to_numpy().nonzero()[0][0])
            ids = ", ".join(f"{k} {table[k].iloc[row]!r}" for k in key)
            raise InputError(f"duplicate id ({ids})", file=self.source, record=f"{table_name} row {row}", field=key[-1])

    def _check_text(self, table: pd.DataFrame, table_name: str, id_column: str) -> None:
        empty = table["text"].str.strip().eq("")
        if empty.any():
            row = int(empty.to_numpy().nonzero()[0][0])
            raise InputError(
                "is empty or whitespace",
                file=self.source,
                record=f"{table_name} {id_column} {table[id_column].iloc[row]!r}",
                field="text",
            )

    def _check_qrels(self) -> None:
        qrels = self.qrels
        if not pd.api.types.is_integer_dtype(qrels["relevance"]):
            raise InputError(f"dtype {qrels['relevance'].dtype} is not an integer", file=self.source, field="relevance")
        for column, table_name, known in (
            ("query_id", "queries", self.queries["query_id"]),
            ("doc_id", "corpus", self.corpus["doc_id"]),
        ):
            unknown = ~qrels[column].isin(known)
            if unknown.any():
                row = int(unknown.to_numpy().nonzero()[0][0])
                raise InputError(
                    f"names {column} {qrels[column].iloc[row]!r}, which is not in the {table_name} table",
                    file=self.source,
                    record=f"qrels row {row}",
                    field=column,
                )
        not_positive = qrels["relevance"] <= 0
        if not_positive.any():
            row = int(not_positive.to_numpy().nonzero()[0][0])
            raise InputError("relevance must be > 0", file=self.source, record=f"qrels row {row}", field="relevance")
        orphan = ~self.queries["query_id"].isin(qrels["query_id"])
        if orphan.any():
            row = int(orphan.to_numpy().nonzero()[0][0])
            raise InputError(
                "query has no relevant document in qrels",
                file=self.source,
                record=f"queries query_id {self.queries['query_id'].iloc[row]!r}",
                field="query_id",
            )

    def _replace(self, corpus: pd.DataFrame, queries: pd.DataFrame, qrels: pd.DataFrame, name: str = "") -> Dataset:
        return Dataset(
            name=name or self.name,
            corpus=corpus.reset_index(drop=True),
            queries=queries.reset_index(drop=True),
            qrels=qrels.reset_index(drop=True),
            source=self.source,
        )

    def subset(self, doc_ids: Iterable[str], name: str = "") -> Dataset:
        """Keep the documents in `doc_ids` (in corpus order), the qrels naming them, and the queries that still
        have a relevant document. Unknown ids raise ValueError (a caller's mistake, not bad input)."""
        keep = pd.Index(list(doc_ids))
        unknown = keep.difference(self.corpus["doc_id"])
        if len(unknown):
            raise ValueError(f"subset of {self.source}: {len(unknown)} unknown doc_ids, e.g. {list(unknown[:3])}")
        corpus = self.corpus[self.corpus["doc_id"].isin(keep)]
        qrels = self.qrels[self.qrels["doc_id"].isin(keep)]
        queries = self.queries[self.queries["query_id"].isin(qrels["query_id"])]
        log.debug(
            "subset of %s: %d of %d documents, %d of %d queries",
            self.name,
            len(corpus),
            len(self.corpus),
            len(queries),
            len(self.queries),
        )
        return self._replace(corpus, queries, qrels, name)

    def first_query_per_document(self) -> Dataset:
        """For each document, keep the first query (in queries-table order) whose qrels name it; drop the rest.

        This is the paper's one-query-per-document setting: on SQuAD it keeps the first question of each
        paragraph. A kept query keeps all its qrels (if it is first for d1 and also relevant to d2, d2 stays
        relevant: dropping it would call a relevant document a miss). The corpus is unchanged.
        """
        position = pd.Series(range(len(self.queries)), index=self.queries["query_id"])
        first_pos = self.qrels["query_id"].map(position).groupby(self.qrels["doc_id"], sort=False).min()
        chosen = self.queries["query_id"].iloc[sorted(set(first_pos.tolist()))]
        queries = self.queries[self.queries["query_id"].isin(chosen)]
        qrels = self.qrels[self.qrels["query_id"].isin(chosen)]
        dropped = len(self.queries) - len(queries)
        if dropped:
            log.info("%s: first query of each document: %d queries kept, %d dropped", self.name, len(queries), dropped)
        return self._replace(self.corpus, queries, qrels)

    def with_titles_joined(self) -> Dataset:
        """Document text becomes ``(title + " " + text).strip()``: the join BEIR, MTEB and sentence-transformers use
        for titled corpora, so a score here is comparable with theirs. Untitled documents are unchanged."""
        joined = (self.corpus["title"] + " " + self.corpus["text"]).str.strip()
        corpus = self.corpus.assign(text=joined.where(self.corpus["title"] != "", self.corpus["text"]))
        return self._replace(corpus, self.queries, self.qrels)

    def with_query_mode(self, mode: str) -> Dataset:
        """`all`: unchanged; `first`: `first_query_per_document()`."""
        if mode == "all":
            return self
        if mode == "first":
            return self.first_query_per_document()
        raise ValueError(f"query mode must be 'first' or 'all', got {mode!r}")
