"""What the selected Hydra launcher means for a sweep: how many jobs run at once, and where.

`hydra/launcher=basic` runs jobs one after another in this process; `joblib` runs `n_jobs` at once in worker
processes on this machine; `submitit_slurm` (and any other) runs them as separate processes, maybe on other
machines. The sweep callback and the sweeper read this to split threads, refuse a store that cannot take parallel
writers, and decide which unfinished runs are certainly dead when the sweep ends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.errors import ConfigError

SERVER_HINT = (
    "start a tracking server and point the sweep at it: "
    "`mlflow server --backend-store-uri sqlite:///experiments/mlflow-server.db "
    "--artifacts-destination experiments/mlartifacts --host 127.0.0.1 --port 5000 --workers 1 &`, "
    "then add tracking.uri=http://127.0.0.1:5000 (docs/sweeps.md)"
)


@dataclass(frozen=True)
class LauncherInfo:
    """kind: basic | joblib | submitit_slurm | submitit_local | other; parallel: jobs may overlap in time;
    local: every job runs on this machine and has ended when the launcher returns."""

    kind: str
    n_jobs: int  # jobs at once on this machine (1 for basic; -1 resolved to the CPU count); 0 = unknown (remote)
    parallel: bool
    local: bool

    @classmethod
    def from_cfg(cls, launcher: Mapping[str, Any]) -> LauncherInfo:
        target = str(launcher.get("_target_", ""))
        if target.endswith("BasicLauncher"):
            return cls("basic", 1, False, True)
        if target.endswith("JoblibLauncher"):
            n_jobs = int(launcher.get("n_jobs") or -1)
            if n_jobs < 0:  # joblib: -1 = all CPUs, -2 = all but one, ...
                n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
            return cls("joblib", n_jobs, n_jobs > 1, True)
        if target.endswith("SlurmLauncher"):
            return cls("submitit_slurm", 0, True, False)
        if target.endswith("LocalLauncher"):
            return cls("submitit_local", 0, True, True)
        return cls("other", 0, True, False)


def threads_per_job(info: LauncherInfo, cpu_count: int | None = None) -> int | None:
    """Torch threads for each of `n_jobs` local jobs so that they share the cores instead of fighting over them.

    None when there is nothing to split (one job at a time, or jobs on other machines that get their own cores).
    """
    if info.kind != "joblib" or info.n_jobs <= 1:
        return None
    cores = cpu_count or os.cpu_count() or 1
    return max(1, cores // info.n_jobs)


def check_store(uri: str, info: LauncherInfo) -> None:
    """Refuse parallel jobs against the embedded SQLite store: concurrent writers there lose runs or fail with
    "database is locked". A tracking server serialises writes (and serves every machine of a cluster)."""
    if info.parallel and uri.startswith("sqlite:"):
        raise ConfigError(
            "tracking.uri",
            f"hydra/launcher={info.kind} runs jobs in parallel, but {uri} is the embedded SQLite store, which "
            f"parallel writers can corrupt or lock; {SERVER_HINT}",
        )
