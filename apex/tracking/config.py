"""`TrackingConfig`: where MLflow runs go (the `tracking` group); importable without importing MLflow."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass
from apex.core.secrets import scrub

# Database schemes MLflow's SQLAlchemy store accepts → the driver module it imports.
DB_DRIVERS = {"postgresql": "psycopg2", "mysql": "pymysql", "mssql": "pyodbc"}


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

    def validate(self) -> None:
        """A URI MLflow can open here: a SQLite file, an MLflow server, or a database whose driver is installed."""
        scheme = self.uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in self.uri else ""
        if scheme in ("sqlite", "http", "https"):
            return
        if scheme in DB_DRIVERS:
            if importlib.util.find_spec(DB_DRIVERS[scheme]) is None:
                raise ConfigError(
                    "tracking.uri",
                    f"a {scheme}:// store needs the Python driver '{DB_DRIVERS[scheme]}', which is not installed; "
                    "install it, or use sqlite:///experiments/mlflow.db or http://host:port of an MLflow server",
                )
            return
        raise ConfigError(
            "tracking.uri",
            f"{scrub(self.uri)!r} is not a tracking store apex can use: give sqlite:///path.db, http(s)://host:port of "
            f"an MLflow server, or {'/'.join(sorted(DB_DRIVERS))}:// with its driver installed",
        )
