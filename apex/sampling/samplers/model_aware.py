"""The paper's model-aware contrastive sampling: a balanced draw of hard and soft negatives per query.

The frozen base model ranks the corpus for each query; its top-K minus the false-negative guard is the candidate
pool. The hard band (default: ranks 1-10) holds what the base model already confuses with the answer; the soft
band (default: ranks 30-100) holds related but clearly different documents. Each query gets `n_hard` negatives
drawn uniformly from its hard band and `n_soft` from its soft band (without replacement, from the run's seeded
generator). A candidate in both bands counts as hard.

Shortage: a band with fewer eligible members than its quota (the guard removed many, a small corpus, a percentile
band that misses this query) is filled by the sources in `sampler.fallback`, in order: `other_band` (surplus
members of the other band), then `pool` (eligible candidates in neither band). Each negative keeps the label of
the band it belongs to (`hard`, `soft` or `pool`), not the quota it filled; the stats count both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from apex.core.errors import ConfigError
from apex.sampling.bands import band_mask, band_thresholds, draw
from apex.sampling.candidates import build_pool
from apex.sampling.config import DEFAULT_HARD, DEFAULT_SOFT, FALLBACK_SOURCES, BandConfig, PoolConfig, band_values
from apex.sampling.registry import Sampler, register_sampler
from apex.sampling.selection import ChosenNegatives, SamplerInputs, count_summary, selection_from_pool

log = logging.getLogger("apex.sampling")


@dataclass(frozen=True)
class ModelAwareConfig(PoolConfig):
    """n_hard from the hard band and n_soft from the soft band of each query's pool; `fallback` fills shortages."""

    name: str = "model_aware"
    n_hard: int = 2
    n_soft: int = 2
    hard: BandConfig = DEFAULT_HARD
    soft: BandConfig = DEFAULT_SOFT
    fallback: tuple[str, ...] = ("other_band", "pool")

    @classmethod
    def prepare(cls, values: dict[str, Any], key: str) -> dict[str, Any]:
        values = band_values(values, key)
        if values.get("fallback", ()) is None:
            values["fallback"] = ()
        return values

    def validate(self) -> None:
        super().validate()
        for key in ("n_hard", "n_soft"):
            if getattr(self, key) < 0:
                raise ConfigError(f"sampler.{key}", f"must be a non-negative integer, got {getattr(self, key)}")
        self.hard.validate("sampler.hard")
        self.soft.validate("sampler.soft")
        bad = [s for s in self.fallback if s not in FALLBACK_SOURCES]
        if bad or len(set(self.fallback)) != len(self.fallback):
            raise ConfigError(
                "sampler.fallback", f"distinct entries from {FALLBACK_SOURCES}, got {list(self.fallback)}"
            )
        if self.n_hard + self.n_soft < 1:
            raise ConfigError("sampler.name", "model_aware: n_hard + n_soft must be >= 1")
        for band_name, band in (("hard", self.hard), ("soft", self.soft)):
            if band.by == "rank" and band.high is not None and band.high > self.candidate_k:
                raise ConfigError(
                    f"sampler.{band_name}",
                    f"rank window ends at {int(band.high)}, beyond candidate_k "
                    f"({self.candidate_k}): only the top candidate_k documents are scored",
                )


def sample_model_aware(
    inputs: SamplerInputs, cfg: ModelAwareConfig, rng: np.random.Generator, progress: bool = False
) -> ChosenNegatives:
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
    intervals = {"hard": band_thresholds(cfg.hard, pool), "soft": band_thresholds(cfg.soft, pool)}
    hard = band_mask(cfg.hard, pool, intervals["hard"])  # (Q, K)
    soft = band_mask(cfg.soft, pool, intervals["soft"]) & ~hard  # overlap counts as hard
    rest = pool.eligible & ~hard & ~soft
    members = {"hard": hard, "soft": soft, "pool": rest}

    n_queries = pool.scores.shape[0]
    keys = rng.random(pool.scores.shape)  # (Q, K) i.i.d. U(0, 1): one random order per query, used for all draws
    quota = {"hard": cfg.n_hard, "soft": cfg.n_soft}
    chosen = {band: draw(members[band], keys, np.full(n_queries, quota[band])) for band in quota}
    short = {band: quota[band] - chosen[band].sum(axis=1) for band in quota}  # (Q,) per quota
    shortages: dict[str, dict[str, Any]] = {
        band: {
            "queries_short": int((short[band] > 0).sum()),
            "slots_short": int(short[band].sum()),
            "filled_from": {},
        }
        for band in quota
    }
    used = chosen["hard"] | chosen["soft"]
    other = {"hard": "soft", "soft": "hard"}
    for source in cfg.fallback:
        for band in quota:
            source_band = other[band] if source == "other_band" else "pool"
            fill = draw(members[source_band] & ~used, keys, short[band])
            used |= fill
            got = fill.sum(axis=1)
            short[band] = short[band] - got
            shortages[band]["filled_from"][source_band] = int(got.sum())
    for band in quota:
        shortages[band]["unfilled"] = int(short[band].sum())
        if shortages[band]["slots_short"]:
            log.info(
                "%s band short for %d queries (%d slots): filled %s, %d left unfilled",
                band,
                shortages[band]["queries_short"],
                shortages[band]["slots_short"],
                shortages[band]["filled_from"],
                shortages[band]["unfilled"],
            )

    labels = np.where(hard, "hard", np.where(soft, "soft", "pool")).astype(object)
    selection = selection_from_pool(pool, used, labels)
    selection.band_scores = {band: pool.scores[mask] for band, mask in members.items()}
    selection.band_scores["positive"] = pool.positive_score
    selection.stats = {
        "backend": pool.backend,
        "candidate_k": int(pool.scores.shape[1]),
        "guard": {**cfg.as_dict()["guard"], "removed": pool.removed},
        "bands": {
            band: {
                "definition": getattr(cfg, band).as_dict(),
                "interval": [float(v) for v in intervals[band]],
                "interval_axis": "rank" if getattr(cfg, band).by == "rank" else "cosine",
                "members": int(members[band].sum()),
                "members_per_query": count_summary(members[band].sum(axis=1)),
            }
            for band in ("hard", "soft")
        }
        | {"pool": {"members": int(rest.sum()), "members_per_query": count_summary(rest.sum(axis=1))}},
        "shortages": shortages,
    }
    return selection


SAMPLER = register_sampler(Sampler("model_aware", ModelAwareConfig, sample_model_aware))
