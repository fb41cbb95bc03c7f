"""How a job's MLflow run ends, and how runs whose process is gone are found.

A run is FINISHED only when its job finished: the recipe sets `apex.results=complete` as its last act, and a run
counts as *done* (`has_results`) only when it is FINISHED with that tag. Every other end is FAILED (an error) or
KILLED (a signal, Ctrl-C, a lost process), with the reason in `apex.failure`.

Three traps this module closes:
- MLflow's own exit handler ends any run still active when the process exits as FINISHED, with whatever it logged
  (none of the results). `ExitGuard` registers after it, so it runs first, and ends the run FAILED instead.
- A process killed with SIGKILL (out of memory, `kill -9`, a node lost) cannot close its run. `stale_reason` finds
  such runs: same host and its pid gone (or reused by a newer process), or no heartbeat for `STALE_AFTER_S` from a
  job on another machine, or its SLURM job no longer queued. The next sweep, resume or report marks them KILLED.
- A tracking server that goes away: MLflow's HTTP client retries for minutes (12.7 measured). A job caps the
  retries (`limit_http_retries`) and a `Heartbeat` thread probes the server; after `LOST_AFTER_S` of refused
  connections (`SLOW_LOST_AFTER_S` of timeouts) it interrupts the job's main thread with `TrackingLost` (exit 3).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from apex.core.errors import ServiceError
from apex.core.secrets import scrub
from apex.tracking import names

log = logging.getLogger("apex.tracking")

RESULTS_TAG, FAILURE_TAG, CLOSED_BY_TAG, HEARTBEAT_TAG = names.RESULTS, names.FAILURE, names.CLOSED_BY, names.HEARTBEAT
HOST_TAG, PID_TAG, PID_START_TAG, SLURM_TAG = names.HOST, names.PID, names.PID_START, names.SLURM_JOB_ID

HEARTBEAT_EVERY_S = 60.0  # a tag write per minute: negligible load on the server
PROBE_EVERY_S = 10.0  # a /health probe every 10 s
LOST_AFTER_S = 40.0  # refused for this long (the server is gone): the job stops, well within a minute
SLOW_LOST_AFTER_S = 600.0  # probes that time out (a server starved of CPU, or a host gone silent): 10 minutes
STALE_AFTER_S = 5 * HEARTBEAT_EVERY_S  # a run on another host with no heartbeat for 5 minutes is dead
# MLflow's HTTP client: at most 2 retries, 1 s and 2 s apart, 20 s per request (its defaults: 7, up to 120 s each)
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class TrackingLost(ServiceError):
    """The tracking server stopped answering while the job ran."""


class Killed(KeyboardInterrupt):
    """A signal (SIGTERM, SIGINT) stopped the process; a KeyboardInterrupt so that no `except Exception` eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def limit_http_retries() -> None:
    """Fail an MLflow request in about a minute at worst instead of many (unless the user set the variables)."""
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


def has_results(run: Run) -> bool:
    """FINISHED with its results: the tag the job sets last; for runs without the tag (logged before it existed),
    a stop point's metrics or the wall time (a run that failed right after it opened has neither)."""
    if run.info.status != "FINISHED":
        return False
    tag = run.data.tags.get(RESULTS_TAG)
    if tag is not None:
        return tag == "complete"
    # Runs logged before the tag existed (or by other tools): results = a stop point's metrics or the wall time.
    return names.STOP_FRACTION in run.data.metrics or names.WALL_SECONDS in run.data.metrics


def status_for(exc: BaseException | None) -> str:
    """The MLflow status a job's end gets: FINISHED (no error), KILLED (a signal or Ctrl-C), else FAILED."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED"
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code >= 128:
        return "KILLED"
    return "FAILED"


def process_start(pid: int) -> float | None:
    """When process `pid` started (unix seconds), None when there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def this_process_tags() -> dict[str, str]:
    """Where a job runs: host, pid and when that process started (a reused pid is not mistaken for the job), and on
    SLURM the job id (to find or cancel one job of a sweep)."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    started = process_start(os.getpid())
    if started is not None:
        tags[PID_START_TAG] = f"{started:.2f}"
    if os.environ.get("SLURM_JOB_ID"):
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        tags[SLURM_TAG] = f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return tags


def slurm_job_alive(job_id: str) -> bool | None:
    """Whether SLURM still lists the job (pending or running); None when no `squeue` answers here."""
    if shutil.which("squeue") is None:
        return None
    try:
        done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:  # "Invalid job id specified": it left the queue long ago
        return False if "Invalid job id" in done.stderr else None
    return bool(done.stdout.strip())


def stale_reason(run: Run, now: float | None = None) -> str | None:
    """Why a RUNNING run's process is certainly gone, or None when it may be alive (module docstring)."""
    if run.info.status != "RUNNING":
        return None
    tags, now = run.data.tags, now or time.time()
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if pid and host == socket.gethostname():
        started = process_start(int(pid))
        if started is None:
            return f"process {pid} on {host} is gone"
        recorded = tags.get(PID_START_TAG)
        if recorded is not None and abs(started - float(recorded)) > 1.0:
            return f"process {pid} on {host} is gone (the pid now belongs to another process)"
        return None
    if tags.get(SLURM_TAG) and slurm_job_alive(tags[SLURM_TAG]) is False:
        return f"SLURM job {tags[SLURM_TAG]} is no longer queued or running"
    beat = tags.get(HEARTBEAT_TAG)
    if beat is not None and now - float(beat) > STALE_AFTER_S:
        return f"no heartbeat for {now - float(beat):.0f} s (host {host})"
    return None


def close_run(client: MlflowClient, run_id: str, status: str, closed_by: str, reason: str | None = None) -> None:
    """End another process's run: who closed it and why, then the status."""
    client.set_tag(run_id, CLOSED_BY_TAG, closed_by)
    if reason:
        client.set_tag(run_id, FAILURE_TAG, reason[:500])
    client.set_terminated(run_id, status)


def settle_stale(client: MlflowClient, runs: list[Run], closed_by: str) -> int:
    """Mark every run of `runs` whose process is certainly gone KILLED; returns how many."""
    count = 0
    for run in runs:
        reason = stale_reason(run)
        if reason is not None:
            close_run(client, run.info.run_id, "KILLED", f"stale ({closed_by})", reason)
            log.warning("run %s was left RUNNING by a dead process (%s): marked KILLED", run.info.run_id, reason)
            count += 1
    return count


def running_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """Every RUNNING run of the experiment (few: the candidates for `settle_stale`)."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class ExitGuard:
    """If the process exits while the run is still open, end it FAILED (not MLflow's FINISHED) with the reason."""

    def __init__(self, end: Callable[[str, str], None]) -> None:
        self._end = end
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        self._end("FAILED", "the process exited before the job finished")

    def cancel(self) -> None:
        atexit.unregister(self._at_exit)


class Heartbeat:
    """A daemon thread: probes the tracking server every `PROBE_EVERY_S`, writes `apex.heartbeat` every
    `HEARTBEAT_EVERY_S`; after `LOST_AFTER_S` without an answer it calls `on_lost(message)` once and stops."""

    def __init__(self, uri: str, run_id: str, on_lost: Callable[[str], None]) -> None:
        self.uri, self.run_id, self.on_lost = uri, run_id, on_lost
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="apex-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        if self.uri.startswith(("http://", "https://")):  # a local SQLite store has no server to lose
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        client = MlflowClient(self.uri)
        silent_since: float | None = None
        last_beat = 0.0
        while not self._stop.wait(PROBE_EVERY_S):
            failure = probe(self.uri)
            if failure is not None:
                silent_since = silent_since or time.monotonic()
                silent = time.monotonic() - silent_since
                # A refused connection means the server is gone; a timeout may be a server starved of CPU by the
                # jobs themselves (measured: /health over 5 s at load 40 on 2 cores), so it gets much longer.
                if silent >= (SLOW_LOST_AFTER_S if failure == "timeout" else LOST_AFTER_S):
                    self.lost = f"tracking server {scrub(self.uri)} did not answer for {silent:.0f} s ({failure})"
                    self.on_lost(self.lost)
                    return
                continue
            silent_since = None
            if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                try:
                    client.set_tag(self.run_id, HEARTBEAT_TAG, str(int(time.time())))
                    last_beat = time.monotonic()
                except Exception as exc:  # a missed beat is retried; the probe decides "lost"
                    log.debug("heartbeat of %s not written: %s", self.run_id, exc)


def probe(uri: str, timeout_s: float = 5.0) -> str | None:
    """GET <uri>/health: None when the server answered (any HTTP status), "timeout", or "down" (refused, no route)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return "timeout" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "down"


def raise_in_main_thread() -> tuple[Callable[[str], None], Any] | None:
    """An `on_lost` for `Heartbeat` that raises `TrackingLost` in the main thread, waking it from a blocking call
    (a real SIGUSR1 delivered to the main thread; its handler raises). Returns it and the handler to restore, or
    None when this is not the main thread or SIGUSR1 already has a handler (then the capped HTTP retries decide)."""
    message: list[str] = []

    def on_lost(text: str) -> None:
        message.append(text)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def handler(signum: int, frame: object) -> None:
        raise TrackingLost(message[-1] if message else "the tracking server stopped answering")

    try:
        if signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL:
            return None
        return on_lost, signal.signal(signal.SIGUSR1, handler)
    except ValueError:  # not the main thread
        return None
