"""`TrackingConfig`: where MLflow runs go (the `tracking` group); importable without importing MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.schema import read_dataclass


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking URI (sqlite file or server), artifact root for new experiments, experiment name."""

    uri: str = "sqlite:///experiments/mlflow.db"
    artifact_root: str = "experiments/mlartifacts"
    experiment: str = "apex"
    log_adapter: bool = True
    # At the end of the run, export the chosen stop point (best validation rank@1, else the last) as a merged
    # sentence-transformers model into the run's output folder and log it as an MLflow model (apex.export).
    export_model: bool = False

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "tracking") -> TrackingConfig:
        return read_dataclass(cls, key, section)
