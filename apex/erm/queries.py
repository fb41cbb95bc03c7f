"""Synthetic queries for corpora without any: one LLM-written query per document, cached and resumable like maps.

Uses the same LLM layer (client, retries, re-asks, concurrency, cache, Batch API) with its own prompt
(`erm-query/v1`, in `apex.erm.prompts`), so query answers and map answers never share cache keys. Query ids are
`q-<doc_id>`: stable across runs and across corpus orderings. A document whose query failed gets no query (counted
in `stats["n_failed"]`, logged, listed in `failures`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from apex.erm.config import ErmConfig
from apex.erm.pipeline import check_items
from apex.erm.prompts import QUERY_TASK
from apex.erm.runner import answer_texts

log = logging.getLogger("apex.erm")


@dataclass
class QueryResult:
    """queries (query_id, text); qrels (query_id, doc_id, relevance=1); failures (doc_id, reason, attempts); stats."""

    queries: pd.DataFrame
    qrels: pd.DataFrame
    failures: pd.DataFrame
    stats: dict[str, float]


def generate_queries(corpus: pd.DataFrame, cfg: ErmConfig, cache_dir: Path, *, progress: bool = True) -> QueryResult:
    """One query per corpus document (columns doc_id, text), with an LLM backend (`gpt4o` or `openai_compatible`)."""
    if not cfg.is_llm:
        raise ValueError(f"synthetic queries need an LLM backend (erm=gpt4o or openai_compatible), not erm={cfg.name}")
    items = pd.DataFrame({"id": corpus["doc_id"], "text": corpus["text"]})
    check_items(items, source="<corpus>")
    answers = answer_texts(list(items["text"]), QUERY_TASK, cfg, Path(cache_dir), progress=progress)
    queries, qrels, failures = [], [], []
    for doc_id, key in zip(items["id"], answers.keys, strict=True):
        outcome = answers.outcomes.get(key)
        if outcome is not None and outcome.ok:
            queries.append((f"q-{doc_id}", outcome.payload))
            qrels.append((f"q-{doc_id}", doc_id, 1))
        else:
            reason = outcome.reason if outcome is not None else "no answer stored (batch not finished?)"
            failures.append((doc_id, reason, outcome.attempts if outcome is not None else 0))
    stats = {"n_ok": float(len(queries)), "n_failed": float(len(failures)), **answers.stats}
    if failures:
        log.warning("erm queries: no query for %d of %d documents", len(failures), len(items))
    return QueryResult(
        queries=pd.DataFrame(queries, columns=["query_id", "text"]).astype(str),
        qrels=pd.DataFrame(qrels, columns=["query_id", "doc_id", "relevance"]).astype(
            {"query_id": str, "doc_id": str, "relevance": int}
        ),
        failures=pd.DataFrame(failures, columns=["doc_id", "reason", "attempts"]),
        stats=stats,
    )
