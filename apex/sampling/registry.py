"""The `SAMPLERS` registry: `sampler.name` → the function that picks negatives, and whether it needs vectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from apex.sampling.config import SamplerConfig
from apex.sampling.hard_only import sample_hard_only
from apex.sampling.in_batch import sample_in_batch
from apex.sampling.model_aware import sample_model_aware
from apex.sampling.random import sample_random
from apex.sampling.selection import SamplerInputs, Selection

SampleFn = Callable[[SamplerInputs, SamplerConfig, np.random.Generator, bool], Selection]


@dataclass(frozen=True)
class Sampler:
    sample: SampleFn
    needs_embeddings: bool = True  # False: nothing is encoded (in_batch)


SAMPLERS: dict[str, Sampler] = {
    "model_aware": Sampler(sample_model_aware),
    "random": Sampler(sample_random),
    "hard_only": Sampler(sample_hard_only),
    "in_batch": Sampler(sample_in_batch, needs_embeddings=False),
}
