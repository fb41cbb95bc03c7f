"""Parallel sweeps against a real `mlflow server` on a free local port: the joblib launcher at 2 jobs, one parent
with every child, a SIGKILLed job marked KILLED by the parent's close, and `+resume=` re-running exactly that job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apex_cli import TINY_RUN
from mlflow.tracking import MlflowClient

from apex.tracking.server import local_server

pytestmark = pytest.mark.slow  # each sweep takes minutes on 2 shared cores

REPO = Path(__file__).resolve().parents[1]
FAST = [*TINY_RUN, "eval.on_val=false"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def sweep_cmd(tmp: Path, uri: str, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "apex.run", "-m", *FAST, *JOBLIB, *overrides,
        f"tracking.uri={uri}", f"paths.experiments={tmp}", f"paths.data={tmp}/data", f"hydra.sweep.dir={tmp}/sweep",
    ]  # fmt: skip


def run_sweep(tmp: Path, uri: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(sweep_cmd(tmp, uri, *overrides), cwd=REPO, env=env, capture_output=True, text=True)


def all_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("apex")
    return client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with local_server(tmp_path_factory.mktemp("server")) as uri:
        yield uri


def test_joblib_sweep_one_parent_four_finished_children(server, tmp_path: Path) -> None:
    done = run_sweep(tmp_path, server, "seed=0,1,2,3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "torch_threads=1 per job" in done.stdout + done.stderr  # 2 jobs on 2 cores: one thread each
    client = MlflowClient(server)
    runs = all_runs(client)
    parents = [r for r in runs if r.data.tags.get("apex.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["apex.sweep_jobs"] == "4" and parent.data.tags["apex.sweep_jobs_failed"] == "0"
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert all(c.data.tags.get("mlflow.parentRunId") == parent.info.run_id for c in children)  # no stray runs
    assert sorted(c.data.tags["apex.seed"] for c in children) == ["0", "1", "2", "3"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["apex.pid"] for c in children}) == 2  # two worker processes ran the four jobs
    for child in children:
        assert child.data.params["torch_threads"] == "1"
        steps = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "stop_fraction")}
        assert steps == {0: 0.0, 2: 0.5, 4: 1.0}  # every stop point, zero-shot included
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "rank_at_1")) == [0, 2, 4]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "per_query")}
        assert "per_query/step_000004.json" in artifacts  # uploaded through the server's artifact proxy


def test_sigkilled_job_is_marked_killed_and_resume_reruns_exactly_it(server, tmp_path: Path) -> None:
    # Two jobs of different length; the short one finishes, the long one is killed mid-training.
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": server}
    args = ["training.max_steps=4,60", "seed=7", "tracking.experiment=kill"]
    cmd = sweep_cmd(tmp_path, server, *args)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = MlflowClient(server)
    victim = None
    deadline = time.monotonic() + 900
    while victim is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        experiment = client.get_experiment_by_name("kill")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        jobs = {r.data.params.get("training.max_steps"): r for r in runs if r.data.tags.get("apex.kind") == "job"}
        short, long = jobs.get("4"), jobs.get("60")
        running = short and long and short.info.status == "FINISHED" and long.info.status == "RUNNING"
        if running and client.get_metric_history(long.info.run_id, "train_loss"):  # it is training
            victim = long
        time.sleep(1)
    assert victim is not None, "the long job never ran while the short one had finished"
    os.kill(int(victim.data.tags["apex.pid"]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0  # the sweep reports the lost worker

    experiment_id = client.get_experiment_by_name("kill").experiment_id
    assert client.get_run(victim.info.run_id).info.status == "KILLED"  # never left RUNNING
    parent = client.search_runs([experiment_id], "tags.`apex.kind` = 'sweep'")[0]
    assert parent.info.status == "FAILED" and parent.data.tags["apex.sweep_jobs_failed"] == "1", out[-3000:]

    before = {r.info.run_id for r in client.search_runs([experiment_id])}
    done = run_sweep(tmp_path, server, *args, f"+resume={parent.data.tags['mlflow.runName']}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = client.search_runs([experiment_id])
    new = [r for r in runs if r.info.run_id not in before]
    assert len(new) == 1  # exactly the killed job ran again
    assert new[0].data.params["training.max_steps"] == "60" and new[0].info.status == "FINISHED"
    assert new[0].data.tags["mlflow.parentRunId"] == parent.info.run_id  # the same sweep
    assert new[0].data.tags["apex.cell"] == victim.data.tags["apex.cell"]
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["apex.sweep_jobs_failed"] == "0"
    assert parent.data.tags["apex.sweep_attempts"] == "2"
