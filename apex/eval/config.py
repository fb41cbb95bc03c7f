"""Typed evaluation configuration (the `eval` group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from apex.errors import ConfigError
from apex.schema import read_dataclass


@dataclass(frozen=True)
class EvalConfig:
    """Which text view the test corpus is embedded in (plain, as in the paper, or erm), cut-offs, batch sizes.

    on_val: also score the validation split at each stop point (val_ metrics: choose a stop point honestly; the
    objective a Hydra sweeper optimises is validation rank@1 at the chosen stop point).
    """

    view: Literal["plain", "erm"] = "plain"
    ks: tuple[int, ...] = (1, 5, 10)
    batch_size: int = 128
    chunk_size: int = 16384
    on_val: bool = True
    run_depth: int = 100  # documents per query in the TREC run file of each stop point (also gives recall_at_D)
    cache_step0: bool = True  # re-use the base model's evaluation across the seeds and arms of a sweep

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "eval") -> EvalConfig:
        return read_dataclass(cls, key, section)

    def validate(self) -> None:
        if not self.ks or min(self.ks) < 1 or 1 not in self.ks:
            raise ConfigError("eval.ks", f"must be positive cut-offs including 1, got {list(self.ks)}")
        for key in ("batch_size", "chunk_size", "run_depth"):
            if getattr(self, key) < 1:
                raise ConfigError(f"eval.{key}", f"must be >= 1, got {getattr(self, key)}")
