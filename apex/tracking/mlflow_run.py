"""MLflow run lifecycle for one job: open (as a sweep's child when there is one), log, close.

The recipe is the only caller. Runs are opened with ``parent_run_id`` from the environment variable that the
sweep callback sets, which works with any Hydra launcher (unlike ``nested=True``, which relies on the
in-process run stack).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from apex.core.preflight import check_tracking
from apex.core.secrets import scrub, scrub_mapping
from apex.tracking import names
from apex.tracking.config import TrackingConfig
from apex.tracking.saved_view import ui_hint

log = logging.getLogger("apex.tracking")

PARENT_RUN_ENV = "APEX_PARENT_RUN_ID"


def connect(cfg: TrackingConfig) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    A new experiment gets an explicit artifact location: without one, MLflow 3 puts artifacts in ./mlruns.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    check_tracking(cfg.uri, cfg.experiment, cfg.artifact_root)  # seconds, not MLflow's minutes of retries
    if cfg.uri.startswith("sqlite:///"):
        Path(cfg.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(cfg.uri)
    client = MlflowClient()
    from apex.tracking.view import mark_model_training  # local: view imports this module

    found = client.get_experiment_by_name(cfg.experiment)
    experiment_id = found.experiment_id if found is not None else _create_experiment(client, cfg)
    mark_model_training(client, experiment_id)
    return experiment_id


def _create_experiment(client: MlflowClient, cfg: TrackingConfig) -> str:
    location = cfg.artifact_root
    if "://" in location:
        location = f"{location}/{cfg.experiment}"
    elif cfg.uri.startswith(("http://", "https://")):
        location = None  # a server stores (or proxies) artifacts where its --artifacts-destination says
    else:
        location = f"{Path(location).resolve().as_uri()}/{cfg.experiment}"
    try:
        return client.create_experiment(cfg.experiment, artifact_location=location)
    except MlflowException:  # another job of a parallel sweep created it first
        found = client.get_experiment_by_name(cfg.experiment)
        if found is None:
            raise
        return found.experiment_id


def job_tags() -> dict[str, str]:
    """Where a job runs: host, process id and, on SLURM, the job id (to find or kill one job of a sweep)."""
    tags = {names.HOST: socket.gethostname(), names.PID: str(os.getpid())}
    if os.environ.get("SLURM_JOB_ID"):
        tags[names.SLURM_JOB_ID] = os.environ["SLURM_JOB_ID"]
    return tags


class JobRun:
    """One MLflow run for one job; every string it logs passes through the secret scrubber."""

    def __init__(self, cfg: TrackingConfig, run_name: str, tags: Mapping[str, str]) -> None:
        experiment_id = connect(cfg)
        parent = os.environ.get(PARENT_RUN_ENV)
        self.run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=scrub(run_name),
            parent_run_id=parent or None,
            tags=scrub_mapping({**dict(tags), **job_tags()}),
        )
        self.run_id = self.run.info.run_id
        self._previous_sigterm = _end_on_sigterm()
        log.info("MLflow run %s%s", self.run_id, f" (child of {parent})" if parent else "")

    def log_params(self, params: Mapping[str, str]) -> None:
        items = list(scrub_mapping(params).items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[start : start + 100]))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags(scrub_mapping(dict(tags)))

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        mlflow.log_table(table, artifact_file=artifact_file)

    def log_json(self, payload: Any, artifact_file: str) -> None:
        mlflow.log_text(scrub(json.dumps(payload, indent=2, default=str)), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(scrub(text), artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path)

    def ui_hint(self) -> str:
        """Where to look: the experiment's page (model-training mode, apex's saved view) on a tracking server, or
        for a SQLite store the `mlflow ui` command and the same page on it."""
        return ui_hint(mlflow.get_tracking_uri(), self.run.info.experiment_id)

    def end(self, failed: bool = False) -> None:
        mlflow.end_run(status="FAILED" if failed else "FINISHED")
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)


def _end_on_sigterm() -> Any:
    """SIGTERM (a scheduler's time limit, `kill`, a cancelled sweep) ends the active run KILLED, then exits.

    Installed only over the default handler and only in the main thread: a launcher's own handler (submitit
    re-queues on its signals) is kept. Returns the handler to restore, or None when none was installed.
    SIGKILL cannot be caught: the sweep's close marks such runs KILLED (`apex.tracking.sweep_parent`).
    """

    def handler(signum: int, frame: object) -> None:
        mlflow.end_run(status="KILLED")
        raise SystemExit(128 + signum)

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return None
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
