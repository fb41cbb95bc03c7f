"""`StoreConfig`: how a run gets its prepared splits, maps and negatives (the `store` group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from apex.core.schema import read_dataclass


@dataclass(frozen=True)
class StoreConfig:
    """Where maps and negatives come from.

    - enabled: read and write the data store under `paths.data` (false: compute in memory, keep nothing).
    - on_mismatch: the pinned outputs (what `dvc repro` built, data/<stage>) are for another config or their
      files no longer hash to what they recorded: `build` builds this config's outputs into the store
      (data/store/<stage>/<key>) and says so; `refuse` stops the run with an error naming the stage.
    """

    enabled: bool = True
    on_mismatch: Literal["build", "refuse"] = "build"

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "store") -> StoreConfig:
        return read_dataclass(cls, key, section)
