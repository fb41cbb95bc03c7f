"""TREC run and qrels files: the interchange format of trec_eval, ranx, ir_measures and pytrec_eval.

    run:   <query_id> Q0 <doc_id> <rank> <score> <tag>     one line per retrieved document, best first
    qrels: <query_id> 0 <doc_id> <relevance>               one line per judged (query, document) pair

Ids must hold no whitespace (the format is whitespace-separated): an id that does raises ValueError naming it.
Scores are written with 9 significant digits, enough to give back the exact float32 cosine the ranking used.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _check_ids(values: pd.Series, what: str) -> None:
    bad = values[values.astype(str).str.contains(r"\s", regex=True)]
    if len(bad):
        raise ValueError(f"{what} {bad.iloc[0]!r} holds whitespace: it cannot be written to a TREC file")


def write_run(run: pd.DataFrame, path: Path, tag: str = "apex") -> Path:
    """Write ``run`` (query_id, doc_id, rank, score; as ``EvalResult.run``) as a TREC run file; returns ``path``."""
    _check_ids(run["query_id"], "query id")
    _check_ids(run["doc_id"], "document id")
    if any(ch.isspace() for ch in tag) or not tag:
        raise ValueError(f"run tag {tag!r} must be a non-empty word")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{q} Q0 {d} {int(r)} {s:.9g} {tag}\n"
        for q, d, r, s in run[["query_id", "doc_id", "rank", "score"]].itertuples(index=False)
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_qrels(qrels: pd.DataFrame, path: Path) -> Path:
    """Write ``qrels`` (query_id, doc_id, relevance) as a TREC qrels file; returns ``path``."""
    _check_ids(qrels["query_id"], "query id")
    _check_ids(qrels["doc_id"], "document id")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{q} 0 {d} {int(r)}\n" for q, d, r in qrels[["query_id", "doc_id", "relevance"]].itertuples(index=False)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_run(path: Path) -> pd.DataFrame:
    """Read a TREC run file back into (query_id, doc_id, rank, score, tag) columns."""
    table = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["query_id", "q0", "doc_id", "rank", "score", "tag"],
        dtype={"query_id": str, "doc_id": str, "tag": str},
    )
    return table.drop(columns="q0")
