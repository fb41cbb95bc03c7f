"""Baseline: no mined negatives. Training contrasts each query with the other documents of its batch only.

Nothing is encoded: the negatives table is empty and the stats say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apex.sampling.config import SamplerConfig
from apex.sampling.registry import Sampler, register_sampler
from apex.sampling.selection import ChosenNegatives, SamplerInputs


@dataclass(frozen=True)
class InBatchConfig(SamplerConfig):
    """No keys: nothing is mined."""

    name: str = "in_batch"


def sample_in_batch(
    inputs: SamplerInputs | None, cfg: SamplerConfig, rng: np.random.Generator, progress: bool = False
) -> ChosenNegatives:
    del inputs, cfg, rng, progress
    return ChosenNegatives.empty({"note": "in-batch negatives only: nothing mined, nothing encoded"})


SAMPLER = register_sampler(Sampler("in_batch", InBatchConfig, sample_in_batch, needs_embeddings=False, mines=False))
