"""Benchmark: the same 4-job smoke sweep run sequentially, with joblib at 2 jobs and (with --slurm) as a SLURM array
of 2 tasks at once, against a local mlflow server.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/sweep_parallel.py [--seeds 4] [--n-jobs 2] [--quick]
        [--slurm]     # as root: a one-node SLURM cluster from benchmarks/slurm_local.sh for the third row

Starts `mlflow server` on a free port on 127.0.0.1 (runs in <tmp>/server), then times, end to end as a user would
run them,
    python -m apex.run -m seed=0,...,3 experiment=smoke                                      (basic launcher)
    python -m apex.run -m seed=0,...,3 experiment=smoke hydra/launcher=joblib hydra.launcher.n_jobs=2
    python -m apex.run -m seed=0,...,3 experiment=smoke hydra/launcher=submitit_slurm \
        hydra.launcher.array_parallelism=2 hydra.launcher.cpus_per_task=1 ...                    (--slurm)
each into its own MLflow experiment, with caches shared. The sequential sweep lets torch use every core; the
parallel one splits them (torch_threads = cores // n_jobs, set by the sweeper). Prints both wall times, the ratio
parallel / sequential (below 1 = parallel is faster), and the runs found afterwards: parents, children, FINISHED
children and stray runs (runs that are neither). `--quick` shrinks the smoke run further (tests' settings).
Timings on a machine shared with other work vary by ±30%: compare the ratio, and say the machine was shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.tracking.server import local_server

REPO = Path(__file__).resolve().parents[1]

SLURM = [  # the one-node cluster: 2 tasks at once, 1 CPU each (as joblib's 2 jobs get 1 torch thread each)
    "hydra/launcher=submitit_slurm", "hydra.launcher.array_parallelism=2", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=3", "torch_threads=1",
]  # fmt: skip
QUICK = ["dataset.max_documents=120", "dataset.splits.test=40", "dataset.splits.val=10", "training.max_steps=4"]


def timed_sweep(tmp: Path, uri: str, name: str, seeds: int, launcher: list[str], quick: bool) -> float:
    cmd = [
        sys.executable, "-m", "apex.run", "-m", f"seed={','.join(map(str, range(seeds)))}", "experiment=smoke",
        *(QUICK if quick else []), *launcher, f"tracking.uri={uri}", f"tracking.experiment={name}",
        f"paths.experiments={tmp}", f"paths.data={tmp}/data", f"hydra.sweep.dir={tmp}/{name}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{done.stderr[-4000:]}")
    return seconds


def count_runs(client: MlflowClient, name: str) -> dict[str, int]:
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("apex.kind") == "sweep"]
    ids = {p.info.run_id for p in parents}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in ids]
    return {
        "runs": len(runs),
        "parents": len(parents),
        "children": len(children),
        "finished_children": sum(r.info.status == "FINISHED" for r in children),
        "stray": len(runs) - len(parents) - len(children),
    }


@contextmanager
def slurm_cluster(folder: Path) -> Iterator[None]:
    """benchmarks/slurm_local.sh up/down around the body, with SLURM_CONF set for the sweep."""
    script = str(REPO / "benchmarks" / "slurm_local.sh")
    subprocess.run(["bash", script, "up", str(folder)], check=True)
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield
    finally:
        subprocess.run(["bash", script, "down", str(folder)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the tests' smaller smoke settings")
    parser.add_argument("--slurm", action="store_true", help="add the SLURM row (root: starts a one-node cluster)")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}; {args.seeds} jobs; joblib n_jobs={args.n_jobs}; load {os.getloadavg()[0]:.1f}")
    joblib = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
    rows = [("sequential (basic launcher)", "sequential", []), (f"joblib, n_jobs={args.n_jobs}", "parallel", joblib)]
    if args.slurm:
        rows.append(("SLURM array, 2 tasks at once", "slurm", SLURM))
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="apex-sweep-bench-") as folder:
        tmp = Path(folder)
        with local_server(tmp / "server", timeout=300) as uri:
            print(f"mlflow server at {uri}", flush=True)
            for _, name, launcher in rows:
                if name == "slurm":
                    with slurm_cluster(tmp / "slurm"):
                        seconds[name] = timed_sweep(tmp, uri, name, args.seeds, launcher, args.quick)
                else:
                    seconds[name] = timed_sweep(tmp, uri, name, args.seeds, launcher, args.quick)
            client = MlflowClient(uri)
            counts = {name: count_runs(client, name) for _, name, _ in rows}
    print(f"\n| sweep ({args.seeds} jobs) | wall s | / sequential | parents | FINISHED children | stray runs |")
    print("|---|---|---|---|---|---|")
    for label, name, _ in rows:
        found = counts[name]
        print(f"| {label} | {seconds[name]:.0f} | {seconds[name] / seconds['sequential']:.2f} | {found['parents']} | "
              f"{found['finished_children']} of {found['children']} | {found['stray']} |")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f} (a shared machine: compare the ratios, not the seconds)")


if __name__ == "__main__":
    main()
