"""Typed training configuration: the optimiser, the budget, the stop points, the LoRA shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05


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

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any]) -> TrainConfig:
        values = dict(section)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"training config: unknown keys {unknown}; known: {sorted(known)}")
        lora = dict(values.pop("lora", {}) or {})
        bad_lora = sorted(set(lora) - set(LoraSettings.__dataclass_fields__))
        if bad_lora:
            raise ValueError(f"training.lora: unknown keys {bad_lora}")
        values["lora"] = LoraSettings(**lora)
        if "stop_points" in values:
            values["stop_points"] = tuple(float(x) for x in values["stop_points"])
        for key in ("lr", "temperature", "warmup_ratio", "weight_decay", "grad_clip"):
            if key in values:
                values[key] = float(values[key])
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"training.lr must be > 0, got {self.lr}")
        if self.batch_size < 2:
            raise ValueError(f"training.batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"training.epochs must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"training.max_steps must be >= 1 or null, got {self.max_steps}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.temperature <= 0:
            raise ValueError(f"training.temperature must be > 0, got {self.temperature}")
        points = self.stop_points
        if not points or any(not 0.0 < p <= 1.0 for p in points) or list(points) != sorted(set(points)):
            raise ValueError(f"training.stop_points must be increasing fractions in (0, 1], got {list(points)}")

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
