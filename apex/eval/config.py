"""Typed evaluation configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class EvalConfig:
    """Which text view the test corpus is embedded in (plain, as in the paper, or erm), cut-offs, batch sizes."""

    view: Literal["plain", "erm"] = "plain"
    ks: tuple[int, ...] = (1, 5, 10)
    batch_size: int = 128
    chunk_size: int = 16384
    on_val: bool = True

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any]) -> EvalConfig:
        values = dict(section)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"eval config: unknown keys {unknown}")
        if "ks" in values:
            values["ks"] = tuple(int(k) for k in values["ks"])
        cfg = cls(**values)
        if cfg.view not in ("plain", "erm"):
            raise ValueError(f"eval.view must be plain or erm, got {cfg.view!r}")
        if not cfg.ks or min(cfg.ks) < 1 or 1 not in cfg.ks:
            raise ValueError(f"eval.ks must be positive cut-offs including 1, got {list(cfg.ks)}")
        if cfg.batch_size < 1 or cfg.chunk_size < 1:
            raise ValueError("eval.batch_size and eval.chunk_size must be >= 1")
        return cfg
