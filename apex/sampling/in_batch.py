"""Baseline: no mined negatives. Training contrasts each query with the other documents of its batch only.

Nothing is encoded: the negatives table is empty and the stats say so.
"""

from __future__ import annotations

import numpy as np

from apex.sampling.config import SamplerConfig
from apex.sampling.selection import SamplerInputs, Selection


def sample_in_batch(
    inputs: SamplerInputs | None, cfg: SamplerConfig, rng: np.random.Generator, progress: bool = False
) -> Selection:
    del inputs, cfg, rng, progress
    return Selection.empty({"note": "in-batch negatives only: nothing mined, nothing encoded"})
