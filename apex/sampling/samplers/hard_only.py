"""Baseline: the top `n_hard` eligible candidates of each query (hard negatives only, no soft, no randomness).

This is NV-Retriever's "TopK-PercPos" mining: the base model's best-ranked documents that survive the same
false-negative guard as the model-aware sampler, so the two differ only in what they pick, not in what they trust.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from apex.core.errors import ConfigError
from apex.sampling.bands import draw
from apex.sampling.candidates import build_pool
from apex.sampling.config import PoolConfig
from apex.sampling.registry import Sampler, register_sampler
from apex.sampling.selection import ChosenNegatives, SamplerInputs, count_summary, selection_from_pool

log = logging.getLogger("apex.sampling")


@dataclass(frozen=True)
class HardOnlyConfig(PoolConfig):
    """The top n_hard eligible candidates (4 = model_aware's total of 2 hard + 2 soft)."""

    name: str = "hard_only"
    n_hard: int = 4

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.n_hard <= self.candidate_k:
            raise ConfigError(
                "sampler.n_hard", f"hard_only: needs 1 <= n_hard <= candidate_k ({self.candidate_k}), got {self.n_hard}"
            )


def sample_hard_only(
    inputs: SamplerInputs, cfg: HardOnlyConfig, rng: np.random.Generator, progress: bool = False
) -> ChosenNegatives:
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


SAMPLER = register_sampler(Sampler("hard_only", HardOnlyConfig, sample_hard_only))
