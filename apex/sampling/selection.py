"""What every sampler receives (base vectors + labelled positives) and returns (the chosen negatives + stats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apex.sampling.candidates import CandidatePool, Positives


@dataclass
class SamplerInputs:
    """Rows of `queries` are the queries that have at least one labelled positive, in table order."""

    queries: np.ndarray  # (Q, dim) float32, unit rows
    documents: np.ndarray  # (N, dim) float32, unit rows
    positives: Positives


@dataclass
class ChosenNegatives:
    """The chosen negatives, one entry per (query, document), ordered by query then rank."""

    query_index: np.ndarray  # (n,) int64, row of SamplerInputs.queries
    doc_index: np.ndarray  # (n,) int64, row of SamplerInputs.documents
    band: np.ndarray  # (n,) str
    score: np.ndarray  # (n,) float32, base-model cosine
    rank: np.ndarray  # (n,) int64, 1-based rank in the base ranking of the whole corpus
    stats: dict[str, Any] = field(default_factory=dict)
    # Scores of every candidate per band (not only the chosen ones) and of the positives, for the histograms.
    band_scores: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, stats: dict[str, Any] | None = None) -> ChosenNegatives:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, np.zeros(0, dtype=object), np.zeros(0, dtype=np.float32), none, stats or {})


def selection_from_pool(pool: CandidatePool, chosen: np.ndarray, labels: np.ndarray) -> ChosenNegatives:
    """Turn a (Q, K) bool choice over the pool and (Q, K) band labels into a ChosenNegatives, in (query, rank) order."""
    rows, cols = np.nonzero(chosen)  # row-major: by query, then by column = rank
    return ChosenNegatives(
        query_index=rows.astype(np.int64),
        doc_index=pool.indices[rows, cols].astype(np.int64),
        band=labels[rows, cols],
        score=pool.scores[rows, cols].astype(np.float32),
        rank=(cols + 1).astype(np.int64),
    )


def count_summary(per_query: np.ndarray) -> dict[str, float]:
    """min / mean / max of a per-query count (band sizes), JSON-ready."""
    if per_query.size == 0:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(per_query.min()), "mean": round(float(per_query.mean()), 3), "max": int(per_query.max())}
