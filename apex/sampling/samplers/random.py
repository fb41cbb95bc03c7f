"""Baseline: `n_random` negatives per query drawn uniformly from the documents not labelled positive.

The draws pass the same false-negative guard as the other samplers (a rejected draw is counted and replaced), so
the comparison isolates *which* negatives are chosen. Score and rank come from the base model like the others;
the rank is counted over the whole corpus in chunks (`apex.search.rank_of`), as these documents lie anywhere in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from apex.core.progress import progress_bar
from apex.sampling.candidates import guard_limits, lowest_positive_score
from apex.sampling.config import MinedConfig
from apex.sampling.registry import Sampler, register_sampler
from apex.sampling.selection import ChosenNegatives, SamplerInputs

log = logging.getLogger("apex.sampling")


@dataclass(frozen=True)
class RandomConfig(MinedConfig):
    """n_random uniform draws per query (4, matching model_aware's 2 hard + 2 soft)."""

    name: str = "random"
    n_random: int = 4

    def validate(self) -> None:
        super().validate()
        self.check_count("n_random", 1)


def _skip_positives(draws: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Map draws from [0, N - m) onto the N documents minus the m sorted positives (a bijection, order kept).

    The i-th positive p_i (0-based, sorted) is skipped by every draw x with x >= p_i - i, hence the searchsorted.
    """
    return draws + np.searchsorted(positives - np.arange(positives.size), draws, side="right")


def sample_random(
    inputs: SamplerInputs, cfg: RandomConfig, rng: np.random.Generator, progress: bool = False
) -> ChosenNegatives:
    from apex.search import rank_of  # torch: imported when sampling, not when the registry is read

    queries, documents, positives = inputs.queries, inputs.documents, inputs.positives
    n_docs, want = documents.shape[0], cfg.n_random
    relative, absolute = guard_limits(lowest_positive_score(queries, documents, positives), cfg.guard)
    picked_q: list[np.ndarray] = []
    picked_d: list[np.ndarray] = []
    removed = {"relative_to_positive": 0, "absolute_ceiling": 0}
    short = np.zeros(queries.shape[0], dtype=np.int64)
    for qi in progress_bar(range(queries.shape[0]), desc="random negatives", enabled=progress, leave=False):
        own = np.unique(positives.of(qi))
        available = n_docs - own.size
        # A short random prefix of a permutation almost always holds `want` documents that pass the guard; if it
        # does not, one full permutation settles it (a uniform draw either way: the two attempts are independent).
        for size in (min(available, 2 * want + 8), available):
            draws = _skip_positives(rng.choice(available, size=size, replace=False), own)
            scores = documents[draws] @ queries[qi]  # (size,)
            over_relative = scores > relative[qi]
            over_absolute = (scores > absolute) & ~over_relative
            passed = np.flatnonzero(~(over_relative | over_absolute))
            if passed.size >= want or size == available:
                break
        keep = passed[:want]
        considered = slice(0, keep[-1] + 1 if keep.size == want else size)  # rejections counted up to the last pick
        removed["relative_to_positive"] += int(over_relative[considered].sum())
        removed["absolute_ceiling"] += int(over_absolute[considered].sum())
        short[qi] = want - keep.size
        picked_q.append(np.full(keep.size, qi, dtype=np.int64))
        picked_d.append(np.sort(draws[keep]))
    query_index = np.concatenate(picked_q) if picked_q else np.zeros(0, dtype=np.int64)
    doc_index = np.concatenate(picked_d) if picked_d else np.zeros(0, dtype=np.int64)

    ranks = np.zeros(query_index.size, dtype=np.int64)
    scores = np.zeros(query_index.size, dtype=np.float32)
    for start in range(0, query_index.size, cfg.query_chunk_size):
        part = slice(start, start + cfg.query_chunk_size)
        # One row per (query, negative) pair: rank_of ranks one target per row over the whole corpus.
        r, s = rank_of(queries[query_index[part]], documents, doc_index[part], chunk_size=cfg.doc_chunk_size)
        ranks[part], scores[part] = r, s
    order = np.lexsort((ranks, query_index))  # by query, then rank, like the other samplers
    if short.any():
        log.info(
            "random: %d queries got fewer than %d negatives (guard/corpus too small)", int((short > 0).sum()), want
        )
    return ChosenNegatives(
        query_index=query_index[order],
        doc_index=doc_index[order],
        band=np.full(query_index.size, "random", dtype=object),
        score=scores[order],
        rank=ranks[order],
        band_scores={"random": scores, "positive": lowest_positive_score(queries, documents, positives)},
        stats={
            "guard": {**cfg.as_dict()["guard"], "removed": {"labelled_positive": 0, **removed}},
            "shortages": {
                "random": {
                    "queries_short": int((short > 0).sum()),
                    "slots_short": int(short.sum()),
                    "filled_from": {},
                    "unfilled": int(short.sum()),
                }
            },
        },
    )


SAMPLER = register_sampler(Sampler("random", RandomConfig, sample_random))
