"""`mine_negatives`: tables in, negatives table + stats out. The one entry point the recipe and the CLI call."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from apex.core.errors import InputError
from apex.model.protocol import TextEncoder
from apex.sampling.cache import BaseEmbeddingCache
from apex.sampling.candidates import Positives
from apex.sampling.config import SamplerConfig
from apex.sampling.registry import SAMPLERS
from apex.sampling.selection import ChosenNegatives, SamplerInputs, count_summary

log = logging.getLogger("apex.sampling")

NEGATIVE_COLUMNS = ("query_id", "doc_id", "band", "score", "rank")


@dataclass
class MiningResult:
    negatives: pd.DataFrame  # query_id, doc_id, band, score (float32), rank (int64, 1-based): docs/design.md
    stats: dict[str, Any]  # JSON-ready: band sizes, histograms, guard removals, shortages, cache, timings
    cache_hit: bool


def _check_table(table: pd.DataFrame, name: str, columns: tuple[str, ...], key: str | None) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"lacks columns {missing}", file=f"{name} table", field=missing[0])
    if key is not None:
        duplicated = table[key].duplicated()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise InputError(f"duplicate id {table[key].iloc[row]!r}", file=f"{name} table", record=row, field=key)


def _positives(
    queries: pd.DataFrame, documents: pd.DataFrame, qrels: pd.DataFrame
) -> tuple[Positives, np.ndarray, int]:
    """(positives of the kept queries as CSR, kept query rows, number of queries skipped for lack of a positive).

    A positive is a qrels row with relevance > 0 (every row, if the table has no relevance column); rows that name
    an unknown query or document are an InputError.
    """
    query_row = pd.Series(np.arange(len(queries)), index=queries["query_id"].to_numpy())
    doc_row = pd.Series(np.arange(len(documents)), index=documents["doc_id"].to_numpy())
    for column, lookup in (("query_id", query_row), ("doc_id", doc_row)):
        unknown = ~qrels[column].isin(lookup.index)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise InputError(f"unknown id {qrels[column].iloc[row]!r}", file="qrels table", record=row, field=column)
    relevant = qrels if "relevance" not in qrels.columns else qrels[qrels["relevance"] > 0]
    q = query_row.loc[relevant["query_id"].to_numpy()].to_numpy()
    d = doc_row.loc[relevant["doc_id"].to_numpy()].to_numpy()
    kept = np.unique(q)  # query rows with >= 1 positive, in table order
    order = np.lexsort((d, q))
    q, d = q[order], d[order]
    new_row = np.searchsorted(kept, q)  # renumber kept queries 0..Q-1
    ptr = np.zeros(kept.size + 1, dtype=np.int64)
    np.add.at(ptr, new_row + 1, 1)
    return Positives(np.cumsum(ptr), d.astype(np.int64)), kept, len(queries) - kept.size


def empty_negatives() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": pd.Series([], dtype="str"),
            "doc_id": pd.Series([], dtype="str"),
            "band": pd.Series([], dtype="str"),
            "score": pd.Series([], dtype=np.float32),
            "rank": pd.Series([], dtype=np.int64),
        }
    )


def _histograms(selection: ChosenNegatives, bins: int) -> dict[str, Any]:
    """Counts per band on one shared set of cosine bin edges, for candidates and for the chosen negatives."""
    every = [a for a in selection.band_scores.values() if a.size] + ([selection.score] if selection.score.size else [])
    if not every:
        return {"bin_edges": [], "candidates": {}, "selected": {}}
    low = float(min(a.min() for a in every))
    high = float(max(a.max() for a in every))
    edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)
    candidates = {band: np.histogram(s, edges)[0].tolist() for band, s in selection.band_scores.items()}
    selected = {
        str(band): np.histogram(selection.score[selection.band == band], edges)[0].tolist()
        for band in sorted(set(selection.band.tolist()))
    }
    return {"bin_edges": [round(float(e), 6) for e in edges], "candidates": candidates, "selected": selected}


def mine_negatives(
    queries: pd.DataFrame,
    documents: pd.DataFrame,
    qrels: pd.DataFrame,
    encoder: TextEncoder | None,
    cfg: SamplerConfig,
    *,
    cache_dir: str | os.PathLike[str],
    view: str,
    seed: int,
    progress: bool = True,
) -> MiningResult:
    """Mine negatives for every query with a labelled positive, with the sampler `cfg.name`.

    `documents` holds the text view to embed (plain text or rendered maps), `view` names it for the cache key.
    Random draws use `numpy.random.default_rng(seed)` only. `encoder` may be None for in_batch.
    """
    start = time.perf_counter()
    _check_table(queries, "queries", ("query_id", "text"), "query_id")
    _check_table(documents, "documents", ("doc_id", "text"), "doc_id")
    _check_table(qrels, "qrels", ("query_id", "doc_id"), None)
    sampler = SAMPLERS[cfg.name]
    stats: dict[str, Any] = {
        "sampler": cfg.name,
        "seed": int(seed),
        "view": view,
        "config": cfg.as_dict(),
        "n_queries": len(queries),
        "n_documents": len(documents),
    }
    rng = np.random.default_rng(seed)
    if not sampler.needs_embeddings:
        selection = sampler.sample(None, cfg, rng, progress)  # type: ignore[arg-type]  # in_batch reads nothing
        stats |= {"cache_hit": False, "encoded": False, "negatives": 0, **selection.stats}
        stats["timings_s"] = {"total": round(time.perf_counter() - start, 3)}
        log.info("sampler %s: no mined negatives, nothing encoded", cfg.name)
        return MiningResult(empty_negatives(), stats, False)
    if encoder is None:
        raise ValueError(f"sampler {cfg.name} needs an encoder")

    if documents.empty:
        raise InputError("holds no documents: nothing to mine from", file="documents table")
    positives, kept, skipped = _positives(queries, documents, qrels)
    if kept.size == 0:
        raise InputError("no query has a labelled positive (relevance > 0): nothing to train on", file="qrels table")
    if skipped:
        log.info("%d of %d queries have no labelled positive: skipped (no training example)", skipped, len(queries))
    embedded = BaseEmbeddingCache(cache_dir).load_or_encode(encoder, queries, documents, view=view, progress=progress)
    after_embeddings = time.perf_counter()
    inputs = SamplerInputs(embedded.queries[kept], embedded.documents, positives)
    selection = sampler.sample(inputs, cfg, rng, progress)
    after_sampling = time.perf_counter()

    query_ids = queries["query_id"].to_numpy()[kept]
    doc_ids = documents["doc_id"].to_numpy()
    negatives = pd.DataFrame(
        {
            "query_id": pd.Series(query_ids[selection.query_index], dtype="str"),
            "doc_id": pd.Series(doc_ids[selection.doc_index], dtype="str"),
            "band": pd.Series(selection.band, dtype="str"),
            "score": pd.Series(selection.score, dtype=np.float32),
            "rank": pd.Series(selection.rank, dtype=np.int64),
        }
    )
    per_query = np.bincount(selection.query_index, minlength=kept.size)
    stats |= {
        "n_queries_used": int(kept.size),
        "queries_without_positive": int(skipped),
        "cache_hit": embedded.cache_hit,
        "cache_key": embedded.key,
        "encoded": not embedded.cache_hit,
        "negatives": len(negatives),
        "negatives_per_query": count_summary(per_query),
        "selected": {str(b): int(n) for b, n in negatives["band"].value_counts().sort_index().items()},
        **selection.stats,
        "histograms": _histograms(selection, cfg.histogram_bins),
        "timings_s": {
            "encode": round(embedded.encode_seconds, 3),
            "embeddings": round(after_embeddings - start, 3),
            "sampling": round(after_sampling - after_embeddings, 3),
            "total": round(time.perf_counter() - start, 3),
        },
    }
    log.info(
        "sampler %s: %d negatives for %d queries %s (cache %s)",
        cfg.name,
        len(negatives),
        kept.size,
        stats["selected"],
        "hit" if embedded.cache_hit else "miss",
    )
    return MiningResult(negatives, stats, embedded.cache_hit)
