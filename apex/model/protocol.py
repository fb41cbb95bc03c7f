"""What mining and evaluation need from an encoder: `apex.model.Encoder` satisfies it, and so do the tests' fakes.
(No torch here: the stages that use it import this module only.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

Kind = Literal["query", "document"]


class TextEncoder(Protocol):
    """A frozen base model: texts in, (n, dim) float32 L2-normalised rows out.

    ``identity()`` names everything that changes those vectors (model source, weights hash, pooling, max lengths,
    prefixes, dtype); it is the model's part of the base-embedding cache key, so it must be JSON-serialisable.
    """

    def encode(
        self, texts: Sequence[str], kind: Kind, show_progress: bool = False, batch_size: int | None = None
    ) -> np.ndarray: ...

    def identity(self) -> dict: ...
