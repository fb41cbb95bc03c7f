"""The processes behind a sweep's jobs: stop them on a signal, wait for them after a launcher gave up early.

Local launchers (joblib, submitit_local) run jobs in child processes of the sweep; `submitit_slurm` runs them as
SLURM jobs whose ids are the folder names submitit writes under `hydra.launcher.submitit_folder`
(`<sweep dir>/.submitit/<array id>_<task>`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import psutil

log = logging.getLogger("apex.sweep")


def stop_children(grace_s: float = 15.0) -> int:
    """SIGTERM every descendant process of this one (jobs end their runs KILLED), SIGKILL what is left after
    `grace_s`; returns how many there were."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(children)


def wait_children(poll_s: float = 2.0) -> None:
    """Wait until no job process of this sweep is left (a launcher that raised may leave siblings running)."""
    while psutil.Process().children(recursive=True):
        time.sleep(poll_s)


def slurm_jobs(submitit_folder: str | None) -> list[str]:
    """The SLURM job (array) ids this sweep submitted, read from submitit's folder."""
    if not submitit_folder:
        return []
    root = Path(submitit_folder.split("%j")[0])
    if not root.is_dir():
        return []
    ids = {path.name.split("_")[0] for path in root.iterdir() if path.is_dir() and path.name[:1].isdigit()}
    return sorted(ids)


def slurm_queued(ids: list[str]) -> list[str]:
    """Which of `ids` SLURM still lists (pending or running); [] without squeue."""
    if not ids or shutil.which("squeue") is None:
        return []
    done = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True, timeout=30
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def cancel_slurm(ids: list[str]) -> None:
    if ids and shutil.which("scancel") is not None:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
        log.info("cancelled SLURM job(s) %s", ", ".join(ids))


def wait_slurm(ids: list[str], timeout_s: float | None = None, poll_s: float = 3.0) -> bool:
    """Wait until SLURM lists none of `ids`; False when `timeout_s` passed first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while slurm_queued(ids):
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
