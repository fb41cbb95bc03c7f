"""Typed evaluation configuration (the `eval` group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass


@dataclass(frozen=True)
class EvalConfig:
    """Which text view the test corpus is embedded in (plain, as in the paper, or erm), cut-offs, batch sizes.

    on_val: also score the validation split at each stop point (val_ metrics: choose a stop point honestly; the
    objective a Hydra sweeper optimises is validation rank@1 at the chosen stop point). merge_lora / autocast: how
    the network is run for evaluation (`apex.model.Encoder.for_evaluation`); neither touches the training model.
    """

    view: Literal["plain", "erm"] = "plain"
    ks: tuple[int, ...] = (1, 5, 10)
    # Texts per forward while evaluating (sorted by length). Small on CPU: 16 ran 700 SQuAD paragraphs + questions
    # in 23 s against 32 s at 128 (fp32, 2 cores: big padded batches fall out of cache); raise it on a GPU.
    batch_size: int = 16
    chunk_size: int = 16384
    on_val: bool = True
    run_depth: int = 100  # documents per query in the TREC run file of each stop point (also gives recall_at_D)
    cache_step0: bool = True  # re-use the base model's evaluation across the seeds and arms of a sweep
    # Evaluate a copy with the LoRA adapter merged into the weights: one matmul per layer instead of three, and
    # the very network `apex.export` writes (not for 4-bit bases). Training never sees the copy.
    merge_lora: bool = True
    # bf16 autocast while evaluating (only where model.bf16 turns it on). Off: scores are computed in float32, so
    # they do not depend on whether the CPU has native bf16 and equal the exported model's; on: faster on such CPUs.
    # (4-bit bases are the exception: bitsandbytes computes their layers in bf16 whatever this says.)
    autocast: bool = False

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "eval") -> EvalConfig:
        return read_dataclass(cls, key, section)

    def validate(self) -> None:
        if not self.ks or min(self.ks) < 1 or 1 not in self.ks:
            raise ConfigError("eval.ks", f"must be positive cut-offs including 1, got {list(self.ks)}")
        for key in ("batch_size", "chunk_size", "run_depth"):
            if getattr(self, key) < 1:
                raise ConfigError(f"eval.{key}", f"must be >= 1, got {getattr(self, key)}")
