"""Configs → MLflow params, the cell hash and the cell label."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

MAX_PARAM_LENGTH = 6000  # MLflow's cap on a param value
# Keys that do not change what a run computes: excluded from the cell (runs differing only here are replicates).
# `report.` holds how the sweep will be judged (report.stop), not what a run computes.
NON_CELL_PREFIXES = (
    "seed", "tracking.", "hydra.", "run_name", "output_dir", "cache_dir", "progress", "torch_threads",
    "paths.", "store.", "report.", "resume",
)  # fmt: skip


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training": {"lora": {"r": 8}}} → {"training.lora.r": 8}; lists become JSON text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(list(value))
        else:
            flat[name] = value
    return flat


def as_params(flat: Mapping[str, Any]) -> dict[str, str]:
    return {k: ("null" if v is None else str(v))[:MAX_PARAM_LENGTH] for k, v in flat.items()}


def _in_cell(key: str) -> bool:
    # Where a run keeps its caches (`cache_dir`, `model.cache_dir`, ...) is a location, not a setting.
    if key.split(".")[-1] == "cache_dir":
        return False
    return not any(key == p.rstrip(".") or key.startswith(p) for p in NON_CELL_PREFIXES)


def cell_hash(flat: Mapping[str, Any]) -> str:
    """12 hex digits identifying the configuration without its seed: seeds of one cell share it."""
    cell = {k: v for k, v in sorted(flat.items()) if _in_cell(k)}
    return hashlib.sha256(json.dumps(cell, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cell_label(overrides: Iterable[str]) -> str:
    """Command-line overrides minus the seed and bookkeeping, e.g. "erm=spacy sampler=model_aware"."""
    kept = [o for o in overrides if _in_cell(o.split("=", 1)[0].lstrip("+~"))]
    return " ".join(sorted(kept)) or "default"
