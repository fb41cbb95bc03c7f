"""A disk cache of the base model's (step 0's) evaluation, shared by every seed and arm of a sweep.

Step 0 is the zero-shot base model: its test and validation scores depend only on the model (weights, pooling,
lengths, prefixes, precision), the data (queries, qrels, the documents in the evaluation view) and the evaluation
settings, never on the seed or the arm. So the first job of a sweep computes them and every later job re-uses them:

    <root>/<key>/metrics.json, per_query.parquet, run.parquet, seconds.json      key = sha256 of those inputs

(seconds.json: how long the computation took, so a job that hits the cache can still estimate what each of its
stop points' evaluations will take.)

A hit returns exactly what was stored (same floats), so step-0 rows are identical across a sweep. Entries are
written to a temporary folder and renamed into place: a crash leaves no half entry, and two jobs racing to write
the same key both succeed (the loser's copy is dropped; both computed the same values).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from apex.core.integrity import SEAL_FILE, is_sealed, seal
from apex.eval.retrieval import EvalResult

log = logging.getLogger("apex.eval")

FORMAT = "apex.step0/1"


def eval_key(
    model: Mapping[str, Any], data_fingerprint: str, view_fingerprint: str, settings: Mapping[str, Any]
) -> str:
    """sha256 (hex) of everything step 0's scores depend on: the encoder's identity, the split's content, the
    evaluation view of its documents, and the evaluation settings (cut-offs, run depth)."""
    payload = {
        "format": FORMAT,
        "model": dict(model),
        "data": data_fingerprint,
        "view": view_fingerprint,
        "settings": dict(settings),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class Step0Cache:
    """``load(key)`` → EvalResult or None; ``save(key, result)``. See the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load(self, key: str) -> EvalResult | None:
        folder = self.root / key
        if not folder.is_dir():
            return None
        if not is_sealed(folder):  # garbled metrics.json or parquet bytes: recomputed and replaced, never served
            log.warning(
                "step-0 cache entry %s is damaged (content differs from its %s): recomputing", folder, SEAL_FILE
            )
            return None
        try:
            metrics = json.loads((folder / "metrics.json").read_text("utf-8"))
            per_query = pd.read_parquet(folder / "per_query.parquet")
            run = pd.read_parquet(folder / "run.parquet") if (folder / "run.parquet").exists() else None
            timing = folder / "seconds.json"  # how long computing it took: what a stop point will take (ETA)
            seconds = json.loads(timing.read_text("utf-8"))["seconds"] if timing.exists() else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:  # a damaged entry is recomputed, not trusted
            log.warning("step-0 cache entry %s is unreadable (%s): recomputing", folder, err)
            return None
        return EvalResult(metrics=metrics, per_query=per_query, run=run, seconds=seconds)

    def save(self, key: str, result: EvalResult) -> bool:
        """Store the entry (replacing a damaged one); False when a sound entry was already there (kept)."""
        target = self.root / key
        if target.exists() and is_sealed(target):
            return False
        tmp = self.root / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "metrics.json").write_text(json.dumps(result.metrics, indent=1), "utf-8")
        result.per_query.to_parquet(tmp / "per_query.parquet", index=False)
        if result.run is not None:
            result.run.to_parquet(tmp / "run.parquet", index=False)
        if result.seconds is not None:
            (tmp / "seconds.json").write_text(json.dumps({"seconds": result.seconds}), "utf-8")
        seal(tmp)  # last: an entry without a valid seal is unfinished or damaged
        if target.exists() and not is_sealed(target):
            shutil.rmtree(target, ignore_errors=True)  # the damaged entry this job recomputed
        try:
            tmp.rename(target)
        except OSError:  # another job stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True
