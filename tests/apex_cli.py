"""Run `python -m apex.run` in a subprocess with every store (MLflow, caches, Hydra outputs) under one tmp folder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The smoke preset shrunk to seconds of training: the end-to-end, export and sweep tests start from it.
TINY_RUN = [
    "experiment=smoke",
    "dataset.max_documents=120",
    "dataset.splits.test=40",
    "dataset.splits.val=10",
    "training.max_steps=4",
]


def run_apex(tmp: Path, *overrides: str, env: Mapping[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "apex.run",
        *overrides,
        f"paths.experiments={tmp}",
        f"paths.data={tmp}/data",
        "torch_threads=1",
        f"hydra.run.dir={tmp}/run",
        f"hydra.sweep.dir={tmp}/sweep",
    ]
    return subprocess.run(cmd, cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=timeout)
