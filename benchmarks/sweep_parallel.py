"""Benchmark: the same 4-job smoke sweep run sequentially and with joblib at 2 jobs, against a local mlflow server.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/sweep_parallel.py [--seeds 4] [--n-jobs 2] [--quick]

Starts `mlflow server` on a free port on 127.0.0.1 (runs in <tmp>/server), then times, end to end as a user would
run them,
    python -m apex.run -m seed=0,...,3 experiment=smoke                                      (basic launcher)
    python -m apex.run -m seed=0,...,3 experiment=smoke hydra/launcher=joblib hydra.launcher.n_jobs=2
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
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.tracking.server import local_server

REPO = Path(__file__).resolve().parents[1]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the tests' smaller smoke settings")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}; {args.seeds} jobs; joblib n_jobs={args.n_jobs}")
    with tempfile.TemporaryDirectory(prefix="apex-sweep-bench-") as folder:
        tmp = Path(folder)
        with local_server(tmp / "server") as uri:
            print(f"mlflow server at {uri}", flush=True)
            sequential = timed_sweep(tmp, uri, "sequential", args.seeds, [], args.quick)
            parallel = timed_sweep(
                tmp, uri, "parallel", args.seeds, ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"],
                args.quick,
            )  # fmt: skip
            client = MlflowClient(uri)
            counts = {name: count_runs(client, name) for name in ("sequential", "parallel")}
    print(f"\nsequential (basic launcher):      {sequential:7.1f} s")
    print(f"parallel (joblib, n_jobs={args.n_jobs}):      {parallel:7.1f} s")
    print(f"wall-time ratio parallel / sequential: {parallel / sequential:.2f}")
    for name, found in counts.items():
        print(f"{name:>10}: " + ", ".join(f"{k} {v}" for k, v in found.items()))


if __name__ == "__main__":
    main()
