"""`DataStore`: one place for prepared splits, maps and negatives, shared by `dvc repro` and `apex.run`.

    <root>/prepared, <root>/erm, <root>/negatives       pinned: written by the DVC stages, md5s in dvc.lock
    <root>/store/<stage>/<key16>/                        built by runs whose config the pinned outputs do not match

Every output folder holds `inputs.json`: the inputs that determine it and their key. A run looks for its key in
the pinned folder first (and checks the files still hash to what dvc.lock recorded), then in the store; what it
finds nowhere it builds through the same function the DVC stage calls, into the store. It always says which.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apex.core.locks import exclusive
from apex.store.config import StoreConfig
from apex.store.hashing import content_sha256, dvc_md5
from apex.store.keys import digest
from apex.tracking.names import data_tag

log = logging.getLogger("apex.store")

INPUTS_FILE = "inputs.json"
PINNED = {"prepared": "prepared", "erm": "erm", "negatives": "negatives"}  # stage → folder under the root


class StoreMismatch(RuntimeError):
    """Pinned outputs that do not match the run (other inputs, or files changed since dvc repro), with refuse."""


@dataclass(frozen=True)
class Located:
    """Where a stage's output for one key lives, and how the run got it: pinned, stored (earlier run) or built."""

    stage: str
    key: str
    path: Path
    status: str

    def provenance(self) -> dict[str, str]:
        """Tags for MLflow: status, key, DVC md5 and sha256 of the folder the run read."""
        return {
            data_tag(self.stage, "status"): self.status,
            data_tag(self.stage, "key"): self.key[:16],
            data_tag(self.stage, "path"): str(self.path),
            data_tag(self.stage, "dvc_md5"): dvc_md5(self.path),
            data_tag(self.stage, "sha256"): content_sha256(self.path),
        }


def write_inputs(folder: Path, inputs: dict[str, Any]) -> str:
    """Record the determining inputs and their key in `folder`; returns the key."""
    key = digest(inputs)
    text = json.dumps({"key": key, "inputs": inputs}, indent=2, sort_keys=True, default=str) + "\n"
    (folder / INPUTS_FILE).write_text(text, "utf-8")
    return key


def build_into(out: Path, inputs: dict[str, Any], build: Callable[[Path], Any]) -> Any:
    """Build into a sibling temporary folder, record the inputs, then replace `out`: readers never see half."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    result = build(tmp)
    key = write_inputs(tmp, inputs)
    if read_key(out) == key:  # a parallel job (a sweep) built the same output first: keep theirs, readers may be on it
        shutil.rmtree(tmp)
        return result
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return result


def read_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / INPUTS_FILE).read_text("utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def locked_md5(lock_file: Path, path: Path) -> str | None:
    """The md5 dvc.lock records for the output `path` (None if the lock or the entry is missing)."""
    try:
        lock = yaml.safe_load(lock_file.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    base = lock_file.resolve().parent
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if (base / out["path"]).resolve() == path.resolve():
                return out.get("md5")
    return None


class DataStore:
    def __init__(self, root: str | os.PathLike[str], cfg: StoreConfig, dvc_lock: str | os.PathLike[str]) -> None:
        self.root, self.cfg, self.dvc_lock = Path(root), cfg, Path(dvc_lock)

    def pinned_dir(self, stage: str) -> Path:
        return self.root / PINNED[stage]

    def keyed_dir(self, stage: str, key: str) -> Path:
        return self.root / "store" / stage / key[:16]

    def find(self, stage: str, key: str) -> Located | None:
        """The pinned output if it is for `key` and unchanged since dvc repro, else a stored one, else None."""
        pinned = self.pinned_dir(stage)
        if read_key(pinned) == key:
            locked = locked_md5(self.dvc_lock, pinned)
            if locked is None or locked == dvc_md5(pinned):
                return Located(stage, key, pinned, "pinned")
            self._mismatch(f"{pinned} changed since dvc repro (dvc.lock md5 {locked}): not used")
        elif pinned.exists():
            other = str(read_key(pinned))[:16]
            self._mismatch(f"{pinned} holds {stage} for other inputs (key {other}, this run {key[:16]})")
        keyed = self.keyed_dir(stage, key)
        return Located(stage, key, keyed, "stored") if read_key(keyed) == key else None

    def _mismatch(self, message: str) -> None:
        if self.cfg.on_mismatch == "refuse":
            raise StoreMismatch(f"{message}; store.on_mismatch=refuse (run dvc repro, or store.on_mismatch=build)")
        log.info("%s", message)

    def get_or_build(self, stage: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> Located:
        """The output for `inputs`: found (pinned/stored), or built by `build(folder)` into the store."""
        key = digest(inputs)
        found = self.find(stage, key)
        if found is None:  # parallel jobs of a sweep: the first builds under the lock, the others wait and read it
            target = self.keyed_dir(stage, key)
            with exclusive(target.parent / ".locks" / f"{target.name}.lock", f"data store {stage}"):
                found = self.find(stage, key)
                if found is None:
                    build_into(target, inputs, build)
                    log.info("%s: built into the store (%s)", stage, target)
                    return Located(stage, key, target, "built")
        log.info("%s: %s (%s)", stage, found.status, found.path)
        return found
