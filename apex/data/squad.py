"""SQuAD JSON (v1.1 layout) as a retrieval dataset.

Each paragraph is a document: doc_id = "<article index>-<paragraph index>" (0-based, stable for a given file),
title = the article title, text = the context. Each question is a query (query_id = the SQuAD question id) whose
only relevant document (relevance 1) is its own paragraph. Queries keep file order, so the first query naming a
paragraph is its first question. Records in errors are JSON paths such as `data[3].paragraphs[2].qas[1]`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from apex.core.errors import InputError
from apex.data.dataset import Dataset, make_corpus, make_qrels, make_queries
from apex.data.readers import get_id, get_list, get_text, read_json

log = logging.getLogger("apex.data")


def load_squad(path: Path, name: str = "squad") -> Dataset:
    """Read a SQuAD `.json` or `.json.gz` file; every question becomes a query (query mode `all`)."""
    root = read_json(path)
    if not isinstance(root, dict):
        raise InputError("top level must be a JSON object", file=path, record="$")
    articles = get_list(root, "data", file=path, record="$")

    corpus: list[tuple[str, str, str]] = []
    queries: list[tuple[str, str]] = []
    qrels: list[tuple[str, str, int]] = []
    first_seen: dict[str, str] = {}  # question id -> record where it first appeared
    n_without_questions = 0
    for a_idx, article in enumerate(articles):
        a_rec = f"data[{a_idx}]"
        title = get_text(article, "title", file=path, record=a_rec, allow_empty=True)
        for p_idx, paragraph in enumerate(get_list(article, "paragraphs", file=path, record=a_rec)):
            p_rec = f"{a_rec}.paragraphs[{p_idx}]"
            doc_id = f"{a_idx}-{p_idx}"
            corpus.append((doc_id, title, get_text(paragraph, "context", file=path, record=p_rec)))
            qas = get_list(paragraph, "qas", file=path, record=p_rec)
            n_without_questions += not qas
            for q_idx, qa in enumerate(qas):
                q_rec = f"{p_rec}.qas[{q_idx}]"
                query_id = get_id(qa, "id", file=path, record=q_rec)
                if query_id in first_seen:
                    raise InputError(
                        f"duplicate question id {query_id!r} (first at {first_seen[query_id]})",
                        file=path,
                        record=q_rec,
                        field="id",
                    )
                first_seen[query_id] = q_rec
                queries.append((query_id, get_text(qa, "question", file=path, record=q_rec)))
                qrels.append((query_id, doc_id, 1))
    if n_without_questions:
        # Kept: a paragraph without questions is still a document (a distractor for retrieval).
        log.info("%s: %d paragraphs have no questions (kept as documents)", path, n_without_questions)
    ds = Dataset(name, make_corpus(corpus), make_queries(queries), make_qrels(qrels), str(path))
    ds.validate()
    return ds
