"""The `SAMPLERS` registry: `sampler.name` → its record (config class, sampling function, facts).

Each module of apex/sampling/samplers/ registers its sampler; a new sampler is a module there and a YAML file in
conf/sampler/ (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from apex.core.registry import Registry
from apex.sampling.config import SamplerConfig
from apex.sampling.selection import ChosenNegatives, SamplerInputs

SampleFn = Callable[[SamplerInputs, SamplerConfig, np.random.Generator, bool], ChosenNegatives]


@dataclass(frozen=True)
class Sampler:
    """One sampler: `sample(inputs, cfg, rng, progress)` picks the negatives of every query."""

    name: str
    config: type[SamplerConfig]
    sample: SampleFn
    needs_embeddings: bool = True  # False: nothing is encoded, no base model determines the output (in_batch)
    mines: bool = True  # False: it picks no negatives at all; runs skip the negatives stage (in_batch)
    operational: tuple[str, ...] = ()  # keys that never change the negatives (none so far: chunk sizes stay in)


SAMPLERS: Registry[Sampler] = Registry("sampler", "apex.sampling.samplers")


def register_sampler(sampler: Sampler) -> Sampler:
    return SAMPLERS.register(sampler)
