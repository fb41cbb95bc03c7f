"""One GPU per parallel job on a multi-GPU machine: each job process claims one device of CUDA_VISIBLE_DEVICES.

Enabled with `hydra.callbacks.gpus.enabled=true` (with `hydra/launcher=joblib hydra.launcher.n_jobs=<GPUs>`). A
joblib worker runs several jobs one after another and CUDA reads CUDA_VISIBLE_DEVICES once per process, so the
claim is per process and kept for its life: the worker takes the first device whose lock
(`<tmp>/apex-gpus-<uid>/gpu-<id>.lock`, machine-wide, so two sweeps on one machine share the devices too) it can
hold, and sets CUDA_VISIBLE_DEVICES to that device before torch starts CUDA. The kernel releases the lock when the
worker dies. SLURM needs none of this: `hydra.launcher.gpus_per_node=1` gives every task its own device.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("apex.sweep")

ALL_DEVICES_ENV = "APEX_ALL_GPUS"  # the machine's device list, kept once a process narrowed CUDA_VISIBLE_DEVICES
_held: dict[str, FileLock] = {}  # device → lock held by this process (at most one)


def visible_devices() -> list[str]:
    """The devices this sweep may use: CUDA_VISIBLE_DEVICES as the sweep saw it, else every device torch counts."""
    listed = os.environ.get(ALL_DEVICES_ENV) or os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch  # counting devices does not initialise CUDA in this process

    return [str(i) for i in range(torch.cuda.device_count())]


def claim_device(lock_dir: Path | None = None) -> str:
    """Claim one free device for this process (idempotent) and narrow CUDA_VISIBLE_DEVICES to it."""
    if _held:
        return next(iter(_held))
    devices = visible_devices()
    if not devices:
        raise RuntimeError("one GPU per job was asked for, but this machine shows no GPU (CUDA_VISIBLE_DEVICES)")
    folder = lock_dir or Path(tempfile.gettempdir()) / f"apex-gpus-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    for device in devices:
        lock = FileLock(str(folder / f"gpu-{device}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        _held[device] = lock
        os.environ.setdefault(ALL_DEVICES_ENV, ",".join(devices))
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        log.info("job process %d runs on GPU %s", os.getpid(), device)
        return device
    raise RuntimeError(
        f"all {len(devices)} GPUs ({', '.join(devices)}) are held by other jobs: set hydra.launcher.n_jobs to at "
        f"most the number of GPUs, or wait for the other sweep (locks in {folder})"
    )


class OneGpuPerJob(Callback):
    """`hydra.callbacks.gpus`: off by default; `enabled=true` gives every parallel job process its own GPU."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = bool(enabled)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            claim_device()
