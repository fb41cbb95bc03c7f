"""Typed training configuration: the optimiser, the budget, the stop points, the LoRA shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass


@dataclass(frozen=True)
class LoraSettings:
    """LoRA shape: rank r, scale alpha / r, dropout on the adapter input (the paper gives none; on CPU a Bernoulli
    mask per adapted layer costs ~30% of a step)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0

    def validate(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ConfigError("training.lora", f"r and alpha must be >= 1, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("training.lora.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how hard to train.

    The budget is ``max_steps`` when set, else ``epochs`` passes over the examples. ``stop_points`` are fractions
    of that budget; at each one the adapter is saved and the model evaluated, so one run gives the whole
    pre-convergence curve (the paper stops before convergence but does not say where).
    """

    lr: float = 2e-5
    batch_size: int = 32
    epochs: int = 1
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    temperature: float = 0.05
    stop_points: tuple[float, ...] = (0.25, 0.5, 1.0)
    lora: LoraSettings = LoraSettings()
    log_every: int = 10
    micro_batch: int | None = 8  # rows per padded forward (length-sorted within the batch); None = whole batch
    length_buckets: bool = False  # batches of similar-length documents (changes the in-batch negatives)
    bucket_window: int = 16  # batches per sorted window when length_buckets is on

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "training") -> TrainConfig:
        return read_dataclass(cls, key, section)

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError("training.lr", f"must be > 0, got {self.lr}")
        if self.batch_size < 2:
            raise ConfigError("training.batch_size", f"must be >= 2 (in-batch negatives), got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError("training.epochs", f"must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("training.max_steps", f"must be >= 1 or null, got {self.max_steps}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("training.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.temperature <= 0:
            raise ConfigError("training.temperature", f"must be > 0, got {self.temperature}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ConfigError("training.micro_batch", f"must be >= 1 or null, got {self.micro_batch}")
        if self.bucket_window < 1:
            raise ConfigError("training.bucket_window", f"must be >= 1, got {self.bucket_window}")
        points = self.stop_points
        if not points or any(not 0.0 < p <= 1.0 for p in points) or list(points) != sorted(set(points)):
            raise ConfigError("training.stop_points", f"must be increasing fractions in (0, 1], got {list(points)}")

    def total_steps(self, n_examples: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        steps_per_epoch = -(-n_examples // self.batch_size)
        return self.epochs * steps_per_epoch

    def stop_steps(self, n_examples: int) -> dict[int, float]:
        """Training step → stop fraction. Distinct steps only: tiny budgets can merge two fractions."""
        total = self.total_steps(n_examples)
        steps: dict[int, float] = {}
        for fraction in self.stop_points:
            steps.setdefault(max(1, round(fraction * total)), fraction)
        return steps
