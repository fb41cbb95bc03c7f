"""Sweeps stopped from outside (issue 22, items 3 and 4), with real processes and a real `mlflow server`:
SIGTERM to the sweep's own process stops its workers, ends the running job KILLED and the parent KILLED with the
counts, and prints one line with the resume command, which then completes the sweep; a tracking server that goes
away fails the sweep within a minute with exit 3 and the resume command, and the resume closes what was left open."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from apex_cli import TINY_RUN
from mlflow.tracking import MlflowClient

from apex.core.cli import RESUME_WITH
from apex.tracking.server import free_port, local_server

pytestmark = [pytest.mark.slow, pytest.mark.sweep_e2e]  # each sweep takes a minute or more on 2 shared cores

REPO = Path(__file__).resolve().parents[1]
# ~1 s a step on 2 cores: 30 steps, the loss logged from the first, leave a window of half a minute or more to stop
# the job mid-training, and keep the resume (which runs the printed command unchanged, both jobs again) short
LONG = [*TINY_RUN, "eval.on_val=false", "training.max_steps=30", "training.log_every=1"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def sweep(tmp: Path, uri: str, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "apex.run", "-m", *overrides, f"tracking.uri={uri}", f"paths.experiments={tmp}",
        f"paths.data={tmp}/data", f"hydra.sweep.dir={tmp}/sweep",
    ]  # fmt: skip


def start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_training(client: MlflowClient, proc: subprocess.Popen, count: int = 1, timeout: float = 900) -> list:
    """The job runs once `count` of them log a training loss."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        experiment = client.get_experiment_by_name("apex")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        jobs = [r for r in runs if r.data.tags.get("apex.kind") == "job" and r.info.status == "RUNNING"]
        training = [r for r in jobs if client.get_metric_history(r.info.run_id, "train_loss")]
        if len(training) >= count:
            return training
        time.sleep(1)
    raise AssertionError("no job trained in time")


def resume_line(stderr: str) -> list[str]:
    line = next(ln for ln in stderr.splitlines() if RESUME_WITH in ln)
    return shlex.split(line.split(RESUME_WITH, 1)[1])


def run_printed(command: list[str]) -> subprocess.CompletedProcess:
    """The printed resume command, unchanged (`python` is this interpreter)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *command[1:]], cwd=REPO, env=env, capture_output=True, text=True)


def runs_by_kind(client: MlflowClient) -> tuple:
    runs = client.search_runs([client.get_experiment_by_name("apex").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("apex.kind") == "sweep")
    return parent, [r for r in runs if r.data.tags.get("apex.kind") == "job"]


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigterm_stops_the_sweep_closes_every_run_and_resume_completes_it(tmp_path: Path, launcher: str) -> None:
    with local_server(tmp_path / "server") as uri:
        client = MlflowClient(uri)
        extra = JOBLIB if launcher == "joblib" else []
        proc = start(sweep(tmp_path, uri, *LONG, *extra, "seed=0,1"))
        wait_training(client, proc, count=2 if launcher == "joblib" else 1)
        workers = psutil.Process(proc.pid).children(recursive=True)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        print(f"{launcher}: stopped {time.monotonic() - started:.1f} s after SIGTERM")
        assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
        lines = [ln for ln in err.splitlines() if "sweep stopped by SIGTERM" in ln]
        assert len(lines) == 1 and RESUME_WITH in lines[0], err[-3000:]
        assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]  # workers stopped
        parent, jobs = runs_by_kind(client)
        assert parent.info.status == "KILLED"
        assert parent.data.tags["apex.sweep_jobs"] == "2" and parent.data.tags["apex.sweep_jobs_finished"] == "0"
        assert {j.info.status for j in jobs} == {"KILLED"}  # none left RUNNING, none FINISHED without results
        if launcher == "basic":  # the printed command is the same for both; running it once keeps CI short
            return

        again = resume_line(lines[0])
        assert again[-1] == f"+resume={parent.info.run_id}"
        done = run_printed(again)
        assert done.returncode == 0, done.stderr[-3000:]
        parent = client.get_run(parent.info.run_id)
        assert parent.info.status == "FINISHED" and parent.data.tags["apex.sweep_attempts"] == "2"


def test_a_tracking_server_that_goes_away_fails_the_sweep_with_exit_3(tmp_path: Path) -> None:
    port = free_port()
    with local_server(tmp_path / "server", port=port) as uri:
        client = MlflowClient(uri)
        proc = start(sweep(tmp_path, uri, *LONG, "seed=0,1"))
        (victim,) = wait_training(client, proc)
    stopped = time.monotonic()  # the server is gone
    _, err = proc.communicate(timeout=300)
    seconds = time.monotonic() - stopped
    print(f"sweep failed {seconds:.0f} s after the server stopped; exit {proc.returncode}")
    assert proc.returncode == 3, err[-3000:]
    assert seconds < 90  # within a minute of the loss (detection 40 s + probes), with room for a busy machine
    assert RESUME_WITH in err and "tracking server" in err
    with local_server(tmp_path / "server", port=port) as uri:  # it comes back, with the same database
        client = MlflowClient(uri)
        assert client.get_run(victim.info.run_id).info.status == "RUNNING"  # nobody could close it while away
        done = run_printed(resume_line(err))
        assert done.returncode == 0, done.stderr[-3000:]
        assert client.get_run(victim.info.run_id).info.status == "KILLED"  # closed on resume
        parent, jobs = runs_by_kind(client)
        assert parent.info.status == "FINISHED"
        assert not [j for j in jobs if j.info.status == "RUNNING"]
