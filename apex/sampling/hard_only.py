"""Baseline: the top `n_hard` eligible candidates of each query (hard negatives only, no soft, no randomness).

This is NV-Retriever's "TopK-PercPos" mining: the base model's best-ranked documents that survive the same
false-negative guard as the model-aware sampler, so the two differ only in what they pick, not in what they trust.
"""

from __future__ import annotations

import logging

import numpy as np

from apex.sampling.bands import draw
from apex.sampling.candidates import build_pool
from apex.sampling.config import SamplerConfig
from apex.sampling.selection import SamplerInputs, Selection, count_summary, selection_from_pool

log = logging.getLogger("apex.sampling")


def sample_hard_only(
    inputs: SamplerInputs, cfg: SamplerConfig, rng: np.random.Generator, progress: bool = False
) -> Selection:
    del rng  # deterministic: the top of the ranking needs no draw
    pool = build_pool(
        inputs.queries,
        inputs.documents,
        inputs.positives,
        cfg.candidate_k,
        cfg.guard,
        backend=cfg.backend,
        query_chunk_size=cfg.query_chunk_size,
        doc_chunk_size=cfg.doc_chunk_size,
        progress=progress,
    )
    n_queries, k = pool.scores.shape
    by_rank = np.broadcast_to(np.arange(k, dtype=np.float64), (n_queries, k))  # smallest key = best rank
    chosen = draw(pool.eligible, by_rank, np.full(n_queries, cfg.n_hard))
    short = cfg.n_hard - chosen.sum(axis=1)
    if short.any():
        log.info("hard_only: %d queries have fewer than %d eligible candidates", int((short > 0).sum()), cfg.n_hard)
    selection = selection_from_pool(pool, chosen, np.full((n_queries, k), "hard", dtype=object))
    selection.band_scores = {"hard": pool.scores[pool.eligible], "positive": pool.positive_score}
    selection.stats = {
        "backend": pool.backend,
        "candidate_k": int(k),
        "guard": {**cfg.as_dict()["guard"], "removed": pool.removed},
        "bands": {
            "hard": {
                "definition": {"by": "top_eligible", "n": cfg.n_hard},
                "members": int(pool.eligible.sum()),
                "members_per_query": count_summary(pool.eligible.sum(axis=1)),
            }
        },
        "shortages": {
            "hard": {
                "queries_short": int((short > 0).sum()),
                "slots_short": int(short.sum()),
                "filled_from": {},
                "unfilled": int(short.sum()),
            }
        },
    }
    return selection
