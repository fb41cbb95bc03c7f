"""Sweep machinery without training: launcher facts, the SQLite refusal, the submitit preset, the parent's close and
resume look-ups on a real MLflow store, and one GPU per job process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from apex.sweep.launcher import LauncherInfo, check_store, threads_per_job
from apex.tracking.mlflow_run import TrackingConfig
from apex.tracking.sweep_parent import SweepParent, resume_parent

REPO = Path(__file__).resolve().parents[1]
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def apex_cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "apex.run", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_launcher_kinds_and_threads_split() -> None:
    assert LauncherInfo.from_cfg({"_target_": BASIC}) == LauncherInfo("basic", 1, False, True)
    two = LauncherInfo.from_cfg({"_target_": JOBLIB, "n_jobs": 2})
    assert two == LauncherInfo("joblib", 2, True, True)
    assert threads_per_job(two, cpu_count=2) == 1 and threads_per_job(two, cpu_count=16) == 8
    assert threads_per_job(LauncherInfo.from_cfg({"_target_": JOBLIB, "n_jobs": 3}), cpu_count=2) == 1
    all_cpus = LauncherInfo.from_cfg({"_target_": JOBLIB, "n_jobs": -1})
    assert all_cpus.n_jobs == os.cpu_count() and threads_per_job(all_cpus) == 1
    assert LauncherInfo.from_cfg({"_target_": JOBLIB, "n_jobs": 1}).parallel is False
    assert threads_per_job(LauncherInfo.from_cfg({"_target_": BASIC})) is None
    slurm = LauncherInfo.from_cfg({"_target_": SLURM})
    assert slurm.parallel and not slurm.local and threads_per_job(slurm) is None


def test_parallel_jobs_against_embedded_sqlite_are_refused() -> None:
    two = LauncherInfo.from_cfg({"_target_": JOBLIB, "n_jobs": 2})
    with pytest.raises(ValueError, match="mlflow server"):
        check_store("sqlite:///experiments/mlflow.db", two)
    check_store("http://127.0.0.1:5000", two)
    check_store("postgresql://db/mlflow", LauncherInfo.from_cfg({"_target_": SLURM}))
    check_store("sqlite:///x.db", LauncherInfo.from_cfg({"_target_": BASIC}))


def test_cli_refuses_a_joblib_sweep_on_sqlite_before_any_job(tmp_path: Path) -> None:
    done = apex_cli(
        "-m", "seed=0,1", "experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.sweep.dir={tmp_path}/sweep",
    )  # fmt: skip
    assert done.returncode != 0
    assert "embedded SQLite store" in done.stderr and "mlflow server --backend-store-uri" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything was written


def test_submitit_slurm_preset_composes_with_documented_knobs() -> None:
    # Hydra 1.3 accepts --cfg only without -m; the launcher node is the same.
    done = apex_cli("hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validated against ConfigStore schema" not in done.stderr
    launcher = yaml.safe_load(done.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == SLURM
    assert launcher["partition"] == "gpu" and launcher["gpus_per_node"] == 1
    assert launcher["timeout_min"] == 240 and launcher["mem_gb"] == 64 and launcher["cpus_per_task"] == 8
    assert launcher["max_num_timeout"] == 0 and launcher["additional_parameters"] == {}  # the plugin's defaults
    bad = apex_cli("hydra/launcher=submitit_slurm", "hydra.launcher.mem_gb=lots", "--cfg", "hydra")
    assert bad.returncode != 0 and "mem_gb" in bad.stderr  # typed by the plugin's schema


def _job(
    client: MlflowClient, experiment_id: str, parent: str, cell: str, seed: int, status: str, results: bool = True
) -> str:
    tags = {"mlflow.parentRunId": parent, "apex.kind": "job", "apex.cell": cell, "apex.seed": str(seed)}
    if status == "FINISHED" and results:
        tags["apex.results"] = "complete"  # set last by a job that ended by itself
    run = client.create_run(experiment_id, tags=tags)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def _new_sweep(tmp_path: Path, folder: str, overrides: str, launcher: str, planned: int):
    """A fresh parent on a SQLite store: (tracking, parent, client, experiment id, parent id)."""
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"))
    parent = SweepParent.start(tracking, f"{tmp_path}/sweeps/{folder}", overrides, launcher, None)
    parent.record_planned(planned)
    return tracking, parent, parent.client, parent.experiment_id, parent.run_id


def test_parent_close_counts_failed_jobs_marks_dead_runs_and_resume_reopens(tmp_path: Path) -> None:
    tracking, parent, client, eid, pid = _new_sweep(tmp_path, "2026-01-01", "seed=0,1,2 lr=1,2", "joblib", 6)
    _job(client, eid, pid, "a", 0, "FINISHED")
    _job(client, eid, pid, "a", 1, "FAILED")
    dead = _job(client, eid, pid, "a", 2, "RUNNING")  # its process was SIGKILLed
    _job(client, eid, pid, "b", 0, "FINISHED")
    _job(client, eid, pid, "b", 1, "FINISHED")
    # job (b, 2) never started
    status = parent.close(jobs_ended=True)
    assert (status.jobs, status.finished, status.failed, status.marked_killed) == (6, 3, 3, 1)
    assert client.get_run(dead).info.status == "KILLED"
    run = client.get_run(pid)
    assert run.info.status == "FAILED" and run.data.tags["apex.sweep_jobs_failed"] == "3"

    resumed = SweepParent.start(tracking, "ignored", "", "joblib", "sweep-2026-01-01")  # by run name
    assert resumed.run_id == pid and client.get_run(pid).info.status == "RUNNING"
    assert resumed.finished_jobs() == {("a", "0"), ("b", "0"), ("b", "1")}
    for cell, seed in (("a", 1), ("a", 2), ("b", 2)):
        _job(client, eid, pid, cell, seed, "FINISHED")
    lost = _job(client, eid, pid, "a", 3, "RUNNING")  # a remote job still running when the sweep stopped
    status = resumed.close(jobs_ended=False)
    assert client.get_run(lost).info.status == "RUNNING"  # not known dead: left alone, counted as not done
    assert (status.finished, status.failed) == (6, 1)
    assert client.get_run(pid).data.tags["apex.sweep_attempts"] == "2"
    with pytest.raises(ValueError, match="no sweep parent"):
        resume_parent(client, eid, "sweep-that-never-was")
    with pytest.raises(ValueError, match="not a sweep parent"):
        resume_parent(client, eid, dead)


def test_a_finished_run_without_results_is_not_done_and_resume_reruns_it(tmp_path: Path) -> None:
    """The trap of issue 22: MLflow's exit handler ended a failed job's run FINISHED with no metrics."""
    tracking, parent, client, eid, pid = _new_sweep(tmp_path, "2026-01-02_10-00-00", "seed=0,1", "basic", 2)
    _job(client, eid, pid, "a", 0, "FINISHED")
    _job(client, eid, pid, "a", 1, "FINISHED", results=False)
    status = parent.close(jobs_ended=True)
    assert (status.status, status.finished, status.failed) == ("FAILED", 1, 1)
    # resume by the sweep folder's name (what `hydra.sweep.dir` shows) as well as by id and run name
    resumed = SweepParent.start(tracking, "ignored", "", "basic", "2026-01-02_10-00-00")
    assert resumed.run_id == pid and resumed.finished_jobs() == {("a", "0")}
    legacy = client.create_run(eid, tags={"mlflow.parentRunId": pid, "apex.kind": "job", "apex.cell": "a",
                                          "apex.seed": "1"})  # fmt: skip
    client.log_metric(legacy.info.run_id, "wall_seconds", 3.0)  # a run from before the results tag
    client.set_terminated(legacy.info.run_id, "FINISHED")
    assert resumed.finished_jobs() == {("a", "0"), ("a", "1")}
    assert resumed.close(jobs_ended=True).status == "FINISHED"


CLAIM = (
    "from apex.sweep.devices import claim_device; import os; print(claim_device(), os.environ['CUDA_VISIBLE_DEVICES'])"
)


def test_one_gpu_per_job_process(tmp_path: Path) -> None:
    """Each process claims a different device of CUDA_VISIBLE_DEVICES and keeps it; with all held, a clear error."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "3,5", "TMPDIR": str(tmp_path)}
    holder = (
        "from apex.sweep.devices import claim_device; import sys, time; print(claim_device(), flush=True); "
        "sys.stdin.read()"
    )
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    first = subprocess.Popen([sys.executable, "-c", holder], env=env, **pipes)
    try:
        assert first.stdout.readline().strip() == "3"
        second = subprocess.run([sys.executable, "-c", CLAIM], env=env, capture_output=True, text=True)
        assert second.stdout.split() == ["5", "5"]  # the other device, and CUDA sees only it
        env_one = {**env, "CUDA_VISIBLE_DEVICES": "3"}
        third = subprocess.run([sys.executable, "-c", CLAIM], env=env_one, capture_output=True, text=True)
        assert third.returncode != 0 and "held by other jobs" in third.stderr
    finally:
        first.communicate(input="", timeout=30)
    again = subprocess.run([sys.executable, "-c", CLAIM], env=env, capture_output=True, text=True)
    assert again.stdout.split() == ["3", "3"]  # the holder's exit released its device


TERM_JOB = """
import sys, time
from apex.tracking.mlflow_run import JobRun, TrackingConfig
run = JobRun(TrackingConfig(uri=sys.argv[1], artifact_root=sys.argv[2]), "victim", {"apex.kind": "job"})
try:
    print(run.run_id, flush=True)
    time.sleep(120)
finally:
    run.end(failed=True)  # what the recipe's finally does: must not turn KILLED into FAILED
"""


def test_sigterm_ends_the_job_run_killed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", TERM_JOB, uri, str(tmp_path / "artifacts")]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = job.stdout.readline().strip()
    assert run_id, job.stderr.read()[-3000:]
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["apex.pid"] == str(job.pid)


def test_the_sweeper_uses_only_public_hydra_interfaces() -> None:
    sources = [*REPO.glob("apex/**/*.py"), *REPO.glob("hydra_plugins/**/*.py")]
    assert [str(p) for p in sources if "hydra._internal" in p.read_text()] == []


def test_grid_is_the_basic_sweepers_grid() -> None:
    """Every combination of the discrete sweeps; the sweeper's params first, the command line overriding them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from apex.sweep.grid import grid

    parser = OverridesParser.create()
    jobs = grid(["seed=0,1", "lr=0.001", "+resume=x"], {"arm": "plain,apex", "seed": "5,6,7"}, parser, None)
    assert jobs == [
        [
            ["arm=plain", "seed=0", "lr=0.001", "+resume=x"],
            ["arm=plain", "seed=1", "lr=0.001", "+resume=x"],
            ["arm=apex", "seed=0", "lr=0.001", "+resume=x"],
            ["arm=apex", "seed=1", "lr=0.001", "+resume=x"],
        ]
    ]
    batches = grid(["a=range(0,5)"], None, parser, 2)
    assert batches == [[["a=0"], ["a=1"]], [["a=2"], ["a=3"]], [["a=4"]]]
    assert grid([], None, parser, None) == [[[]]]
