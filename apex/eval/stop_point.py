"""Evaluate the model at one stop point on several splits (test, validation) that may share a corpus.

Two savings that matter at corpus scale, neither changing a number:

- a document table shared by several splits (``dataset.split=given``: val and test are both ranked against the
  whole corpus) is embedded once per stop point, not once per split;
- at step 0 (the base model) each split's result comes from ``Step0Cache`` when an earlier job of the sweep stored
  it, keyed by (model identity, split content, evaluation view, settings); otherwise it is computed and stored.

Ranking is exact and chunked (apex.search.topk), so memory stays bounded by eval.chunk_size, whatever the corpus.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from apex.data import Dataset
from apex.eval.cache import Step0Cache, eval_key
from apex.eval.config import EvalConfig
from apex.eval.retrieval import EvalResult, evaluate_embeddings
from apex.model.protocol import TextEncoder

log = logging.getLogger("apex.eval")


@dataclass(frozen=True)
class EvalTarget:
    """One split to score: its queries and qrels (``split``) and its documents in the evaluation view (``docs``)."""

    name: str
    split: Dataset
    docs: pd.DataFrame


@dataclass
class StopPointEval:
    results: dict[str, EvalResult]  # split name → result
    cache_hits: dict[str, bool]  # split name → came from the step-0 cache

    def compute_seconds(self) -> float | None:
        """What computing every split took (for cache hits: when it was computed); None if a hit did not say."""
        seconds = [result.seconds for result in self.results.values()]
        return None if any(s is None for s in seconds) else float(sum(seconds))


def _content_hash(docs: pd.DataFrame) -> bytes:
    """A content digest of the (doc_id, text) rows in order: equal tables share one set of embeddings.

    Streamed row by row: `pd.util.hash_pandas_object` held a UTF-8 copy of every text at once (170 MB more peak
    memory at 25,000 NFCorpus documents), more than the corpus's embeddings themselves.
    """
    digest = hashlib.sha256()
    for doc_id, text in zip(docs["doc_id"], docs["text"], strict=True):
        digest.update(f"{len(doc_id)}:{doc_id}{len(text)}:{text}".encode())
    return digest.digest()


def _key(encoder: TextEncoder, target: EvalTarget, cfg: EvalConfig) -> str:
    view = dataclasses.replace(target.split, corpus=target.docs.reset_index(drop=True)[["doc_id", "title", "text"]])
    settings = {"ks": list(cfg.ks), "run_depth": cfg.run_depth}
    return eval_key(encoder.identity(), target.split.fingerprint(), view.fingerprint(), settings)


def evaluate_stop_point(
    encoder: TextEncoder,
    targets: list[EvalTarget],
    cfg: EvalConfig,
    *,
    step: int,
    cache_dir: Path | None,
    progress: bool,
) -> StopPointEval:
    """Score every target at this stop point; see the module docstring for what is shared and cached."""
    cache = Step0Cache(cache_dir) if (step == 0 and cfg.cache_step0 and cache_dir is not None) else None
    out = StopPointEval(results={}, cache_hits={})
    doc_embeddings: dict[bytes, np.ndarray] = {}  # content hash of a docs table → embeddings, shared by targets
    for target in targets:
        key = _key(encoder, target, cfg) if cache is not None else ""
        cached = cache.load(key) if cache is not None else None
        if cached is not None:
            log.info("step 0 %s: cache hit (%s)", target.name, key[:12])
            out.results[target.name], out.cache_hits[target.name] = cached, True
            continue
        started = time.perf_counter()
        docs_key = _content_hash(target.docs)
        if docs_key not in doc_embeddings:
            texts = list(target.docs["text"])
            doc_embeddings[docs_key] = encoder.encode(
                texts, "document", show_progress=progress, batch_size=cfg.batch_size
            )
        queries = list(target.split.queries["text"])
        query_emb = encoder.encode(queries, "query", show_progress=progress, batch_size=cfg.batch_size)
        result = evaluate_embeddings(
            query_emb,
            doc_embeddings[docs_key],
            target.split.queries,
            target.split.corpus,
            target.split.qrels,
            ks=cfg.ks,
            chunk_size=cfg.chunk_size,
            run_depth=cfg.run_depth,
        )
        result.seconds = time.perf_counter() - started
        log.info(
            "step %d %s: evaluated %d queries against %d documents in %.1f s (encoding + search): %s",
            step, target.name, len(queries), len(target.docs), result.seconds,
            ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k not in ("n_queries", "corpus_size")),
        )  # fmt: skip
        if cache is not None:
            stored = cache.save(key, result)
            log.info(
                "step 0 %s: cache miss (%s): %s",
                target.name,
                key[:12],
                "stored" if stored else "kept the entry stored concurrently",
            )
        out.results[target.name], out.cache_hits[target.name] = result, False
    return out
