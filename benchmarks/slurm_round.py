"""The SLURM round: a real sweep through `hydra/launcher=submitit_slurm` (or `submitit_local`) against an `mlflow
server`, then a cancel-and-resume round. Run it inside a cluster from `benchmarks/slurm_local.sh` (which calls it):

    bash benchmarks/slurm_local.sh                       # cluster up, this round, cluster down
    SLURM_CONF=... python benchmarks/slurm_round.py [--launcher submitit_local] [--full]

1. `python -m apex.run -m hydra/launcher=submitit_slurm seed=0,1,2,3 experiment=smoke tracking.uri=<server>`
   (2 array tasks at once, 1 CPU each; model-aware negatives, so the four jobs share one base-embedding cache
   entry and one prepared-data store entry): prints the parent and the children's states, their SLURM array task
   ids, and who built the shared store entry and cache (once: the others waited on the lock and read it).
2. A sweep of a short and a long job; `scancel` of the long one's task while it trains: its run ends KILLED, the
   parent FAILED with 1 failed job; `+resume=<parent id>` submits only that job again (one new SLURM task) and the
   parent ends FINISHED.
Exits non-zero when a state is not the expected one. `--full` runs the smoke preset as it is (tests shrink it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from apex.core.cli import RESUME_WITH  # noqa: E402
from apex.tracking.server import local_server  # noqa: E402

QUICK = ["dataset.max_documents=120", "dataset.splits.test=40", "dataset.splits.val=10", "training.max_steps=4"]
SLURM = [  # what this one-node cluster has: 2 tasks at once, 1 CPU and 3 GB each, no GPU
    "hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=3", "hydra.launcher.array_parallelism=2", "hydra.launcher.timeout_min=60",
]  # fmt: skip
LOCAL = ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=60"]


def launcher_overrides(kind: str) -> list[str]:
    return SLURM if kind == "submitit_slurm" else LOCAL


def sweep_cmd(tmp: Path, uri: str, experiment: str, kind: str, quick: bool, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "apex.run", "-m", *launcher_overrides(kind), "experiment=smoke",
        *(QUICK if quick else []), "torch_threads=1", "eval.on_val=false", *overrides, f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"paths.experiments={tmp}", f"paths.data={tmp}/data", f"hydra.sweep.dir={tmp}/sweeps/{experiment}",
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def runs_of(client: MlflowClient, experiment: str) -> tuple[object, list]:
    """(the latest sweep parent, its children) of an experiment."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000) if found else []
    parents = sorted((r for r in runs if r.data.tags.get("apex.kind") == "sweep"), key=lambda r: r.info.start_time)
    parent = parents[-1] if parents else None
    children = [r for r in runs if parent and r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def submissions(tmp: Path, experiment: str) -> list[str]:
    """SLURM job ids (array_task) submitit wrote for this sweep's folder."""
    folder = tmp / "sweeps" / experiment / ".submitit"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[:1].isdigit()) if folder.is_dir() else []


def show(client: MlflowClient, experiment: str) -> tuple[object, list]:
    parent, children = runs_of(client, experiment)
    tags = parent.data.tags
    print(f"  parent {parent.info.run_id[:8]} {parent.info.status}: jobs {tags.get('apex.sweep_jobs')}, "
          f"finished {tags.get('apex.sweep_jobs_finished')}, failed {tags.get('apex.sweep_jobs_failed')}")  # fmt: skip
    for run in sorted(children, key=lambda r: (r.data.tags.get("apex.seed", ""), r.info.start_time)):
        t = run.data.tags
        print(
            f"  child  {run.info.run_id[:8]} seed {t.get('apex.seed')} {run.info.status:<8} slurm "
            f"{t.get('apex.slurm_job_id', '-'):<8} store {t.get('apex.data.prepared.status', '-'):<6} base-embedding "
            f"cache {t.get('apex.base_embedding_cache', '-'):<4} {t.get('apex.failure', '')[:60]}"
        )
    return parent, children


def check(ok: bool, what: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)


def full_sweep(tmp: Path, uri: str, kind: str, quick: bool, failures: list[str]) -> float:
    client = MlflowClient(uri)
    cmd = sweep_cmd(tmp, uri, "round", kind, quick, "seed=0,1,2,3", "sampler=model_aware")
    print("$", " ".join(cmd[2:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    print(f"sweep exit {done.returncode} after {seconds:.0f} s")
    if done.returncode != 0:
        print(done.stderr[-3000:])
    parent, children = show(client, "round")
    check(parent.info.status == "FINISHED", "parent FINISHED", failures)
    check(sorted(c.info.status for c in children) == ["FINISHED"] * 4, "4 FINISHED children", failures)
    if kind == "submitit_slurm":
        arrays = {c.data.tags.get("apex.slurm_job_id", "").split("_")[0] for c in children}
        check(len(arrays) == 1 and "" not in arrays, f"the 4 jobs are tasks of one SLURM array ({arrays})", failures)
    built = [c.data.tags.get("apex.data.prepared.status") for c in children].count("built")
    check(built == 1, f"prepared splits built once, read by the others ({built} built)", failures)
    misses = [c.data.tags.get("apex.base_embedding_cache") for c in children].count("miss")
    check(misses == 1, f"base embeddings computed once, 3 cache hits ({misses} miss)", failures)
    return seconds


def cancel_and_resume(tmp: Path, uri: str, kind: str, quick: bool, failures: list[str]) -> None:
    client = MlflowClient(uri)
    args = ["training.max_steps=4,30", "training.batch_size=4", "seed=7"]  # the long one: stopped while it trains
    cmd = sweep_cmd(tmp, uri, "cancel", kind, quick, *args)
    print("$", " ".join(cmd[2:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim, deadline = None, time.monotonic() + 1200
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        _, children = runs_of(client, "cancel")
        long = [c for c in children if c.data.params.get("training.max_steps") == "30"]
        if long and long[0].info.status == "RUNNING" and client.get_metric_history(long[0].info.run_id, "train_loss"):
            victim = long[0]
        time.sleep(2)
    if victim is None:
        proc.kill()
        failures.append("the long job never trained")
        print(proc.communicate()[0][-3000:])
        return
    if kind == "submitit_slurm":
        task = victim.data.tags["apex.slurm_job_id"]
        print(f"scancel {task} (the long job, while it trains)", flush=True)
        subprocess.run(["scancel", task], check=True)
    else:
        # submitit's job process ignores SIGTERM (it waits for SLURM's SIGKILL); SIGKILL it as an OOM killer would
        print(f"kill -KILL {victim.data.tags['apex.pid']} (the long job, while it trains)", flush=True)
        os.kill(int(victim.data.tags["apex.pid"]), 9)
    out, _ = proc.communicate(timeout=900)
    said = [ln for ln in out.splitlines() if RESUME_WITH in ln] or out.strip().splitlines()[-1:]
    print(f"sweep exit {proc.returncode}; it said: {said[-1][:300] if said else ''}")
    parent, _ = show(client, "cancel")
    check(client.get_run(victim.info.run_id).info.status == "KILLED", "the cancelled job's run KILLED", failures)
    check(
        parent.info.status == "FAILED" and parent.data.tags.get("apex.sweep_jobs_failed") == "1",
        "parent FAILED with 1 failed job",
        failures,
    )
    before, submitted = {r.info.run_id for r in runs_of(client, "cancel")[1]}, submissions(tmp, "cancel")
    resume = [*args, f"+resume={parent.info.run_id}"]
    done = subprocess.run(sweep_cmd(tmp, uri, "cancel", kind, quick, *resume), cwd=REPO, env=env(), text=True,
                          capture_output=True)  # fmt: skip
    print(f"resume exit {done.returncode}")
    parent, children = show(client, "cancel")
    new = [c for c in children if c.info.run_id not in before]
    again = [s for s in submissions(tmp, "cancel") if s not in submitted]
    check(len(new) == 1 and new[0].data.params.get("training.max_steps") == "30", "resume ran only that job", failures)
    if kind == "submitit_slurm":
        check(len(again) == 1, f"resume submitted one SLURM task ({again})", failures)
    check(parent.info.status == "FINISHED", "parent FINISHED after resume", failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launcher", default="submitit_slurm", choices=["submitit_slurm", "submitit_local"])
    parser.add_argument("--full", action="store_true", help="the smoke preset as it is (default: the tests' size)")
    parser.add_argument("--skip-cancel", action="store_true")
    args = parser.parse_args()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="apex-slurm-round-") as folder:
        tmp = Path(folder)
        with local_server(tmp / "server", timeout=300) as uri:
            print(f"mlflow server at {uri}; launcher {args.launcher}; CPU cores {os.cpu_count()}", flush=True)
            full_sweep(tmp, uri, args.launcher, not args.full, failures)
            if not args.skip_cancel:
                cancel_and_resume(tmp, uri, args.launcher, not args.full, failures)
    print("round:", "all states as expected" if not failures else f"{len(failures)} unexpected: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
