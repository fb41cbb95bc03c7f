"""MLflow run lifecycle for one job: open (as a sweep's child when there is one), log, close.

The recipe is the only caller; how a run ends is `apex.tracking.lifecycle`'s rule. Runs are opened with
``parent_run_id`` from the environment variable that the sweeper sets, which works with any Hydra launcher
(unlike ``nested=True``, which relies on the in-process run stack).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from apex.core.errors import ServiceError
from apex.core.locks import exclusive
from apex.core.preflight import TrackingUnavailable, check_reachable, check_tracking, sqlite_path
from apex.core.secrets import scrub, scrub_mapping
from apex.tracking.config import TrackingConfig
from apex.tracking.lifecycle import (
    FAILURE_TAG,
    RESULTS_TAG,
    ExitGuard,
    Heartbeat,
    TrackingLost,
    limit_http_retries,
    probe,
    raise_in_main_thread,
    status_for,
    this_process_tags,
)
from apex.tracking.saved_view import ui_hint

log = logging.getLogger("apex.tracking")

PARENT_RUN_ENV = "APEX_PARENT_RUN_ID"


def connect(cfg: TrackingConfig) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    A new experiment gets an explicit artifact location: without one, MLflow 3 puts artifacts in ./mlruns.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    check_tracking(cfg.uri, cfg.experiment, cfg.artifact_root)  # seconds, not MLflow's minutes of retries
    database = sqlite_path(cfg.uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(cfg.uri)
    from apex.tracking.view import mark_model_training  # local: view imports this module

    # MLflow creates and migrates a new SQLite database when the first client opens it; two first jobs at once (a
    # parallel sweep) race in its migration ("duplicate column name: step"). One process at a time opens it.
    guard = exclusive(f"{database}.lock", "tracking database") if database is not None else contextlib.nullcontext()
    with guard:
        client = MlflowClient()
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
    """Where a job runs: host, process id (and its start time), and on SLURM the job id."""
    return this_process_tags()


class JobRun:
    """One MLflow run for one job; every string it logs passes through the secret scrubber.

    Use it as `with run.closing(): ...`: the run ends FINISHED only when the block returned after `complete()`,
    KILLED on a signal or Ctrl-C, FAILED on anything else (the reason in `apex.failure`), and never FINISHED by
    MLflow's exit handler (`apex.tracking.lifecycle`).
    """

    def __init__(self, cfg: TrackingConfig, run_name: str, tags: Mapping[str, str]) -> None:
        experiment_id = connect(cfg)
        limit_http_retries()
        parent = os.environ.get(PARENT_RUN_ENV)
        self.run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=scrub(run_name),
            parent_run_id=parent or None,
            tags=scrub_mapping({**dict(tags), **job_tags()}),
        )
        self.run_id, self.uri = self.run.info.run_id, cfg.uri
        self.ended = self.completed = False
        self._exit_guard = ExitGuard(self._end_now)
        self._previous_sigterm = _end_on_sigterm(self)
        lost = raise_in_main_thread()
        self._previous_usr1 = lost[1] if lost else None
        self.heartbeat = Heartbeat(cfg.uri, self.run_id, lost[0] if lost else _log_lost).start()
        log.info("MLflow run %s%s", self.run_id, f" (child of {parent})" if parent else "")

    @contextmanager
    def closing(self) -> Iterator[JobRun]:
        """End the run as the block ended (class docstring); the block's exception goes on."""
        try:
            yield self
        except BaseException as exc:
            lost = self._server_lost(exc)
            self.end(status=status_for(exc), reason=one_line_reason(exc))
            if lost is not None:
                raise lost from exc
            raise
        if self.completed:
            self.end(status="FINISHED")
        else:
            self.end(status="FAILED", reason="the job returned without logging its results")

    def _server_lost(self, exc: BaseException) -> TrackingLost | None:
        """An MLflow request that failed because the tracking server is gone becomes `TrackingLost` (exit 3)."""
        if self.heartbeat.lost is not None or not isinstance(exc, Exception) or isinstance(exc, ServiceError):
            return None
        try:
            check_reachable(self.uri, timeout_s=5.0)
        except TrackingUnavailable as gone:
            self.heartbeat.lost = str(gone)
            return TrackingLost(f"{gone} (the job's last request failed: {one_line_reason(exc)})")
        return None

    def complete(self) -> None:
        """The job's results are all logged: the last tag, the one `has_results` (and resume) look for."""
        mlflow.set_tag(RESULTS_TAG, "complete")
        self.completed = True

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

    def end(self, failed: bool = False, *, status: str | None = None, reason: str | None = None) -> None:
        """End the run once (later calls do nothing): `status`, else FAILED or FINISHED by `failed`."""
        self._end_now(status or ("FAILED" if failed else "FINISHED"), reason)

    def _end_now(self, status: str, reason: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.heartbeat.stop()
        self._exit_guard.cancel()
        if self.heartbeat.lost is not None and probe(self.uri) is None:
            self.heartbeat.lost = None  # it answers again (it was only slow): close the run properly
        if self.heartbeat.lost is None:
            try:
                if reason:
                    mlflow.set_tag(FAILURE_TAG, scrub(reason)[:500])
                mlflow.end_run(status=status)
            except Exception as exc:  # the server went away: the next sweep/report closes it
                log.warning(
                    "run %s could not be closed %s (%s); it is marked when the tracking server answers "
                    "again (resume, the next sweep or report)",
                    self.run_id,
                    status,
                    one_line_reason(exc),
                )
        else:  # no request to a lost server; forget the run locally (MLflow pops it before it calls the server)
            with suppress(Exception):
                mlflow.end_run(status=status)
        _restore(signal.SIGTERM, self._previous_sigterm)
        _restore(signal.SIGUSR1, self._previous_usr1)


def one_line_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}")[:500]


def _log_lost(message: str) -> None:
    log.error("%s", message)


def _restore(signum: signal.Signals, previous: Any) -> None:
    if previous is None:
        return
    with suppress(ValueError):  # not the main thread
        signal.signal(signum, previous)


def _end_on_sigterm(run: JobRun) -> Any:
    """SIGTERM (a scheduler's time limit, `kill`, a cancelled sweep) ends the run KILLED, then exits 143.

    Installed only over the default handler and only in the main thread: a launcher's own handler (submitit
    re-queues on its signals) and a sweep's (it stops its workers) are kept. Returns the handler to restore, or None
    when none was installed. SIGKILL cannot be caught: `apex.tracking.lifecycle.stale_reason` finds such runs.
    """

    def handler(signum: int, frame: object) -> None:
        run.end(status="KILLED", reason=f"stopped by {signal.Signals(signum).name}")
        raise SystemExit(128 + signum)

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return None
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
