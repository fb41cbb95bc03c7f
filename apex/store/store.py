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

from apex.core.errors import InputError
from apex.core.locks import exclusive
from apex.store.config import StoreConfig
from apex.store.hashing import content_sha256, dvc_md5
from apex.store.keys import digest
from apex.tracking.names import data_tag

log = logging.getLogger("apex.store")

INPUTS_FILE = "inputs.json"
PINNED = {"prepared": "prepared", "erm": "erm", "negatives": "negatives"}  # stage → folder under the root


SEAL_SUFFIX = ".sha256"  # <root>/store/<stage>/<key16>.sha256: the folder's content hash, written after the folder


class StoreMismatch(InputError):
    """Pinned outputs that do not match the run (other inputs, no dvc.lock entry, or files changed since dvc repro),
    with store.on_mismatch=refuse: exit status 2, naming the folder and what to do."""

    def __init__(self, message: str, *, file: str | os.PathLike[str]) -> None:
        super().__init__(message, file=file)


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
        """The pinned output if it is for `key` and what dvc.lock records, else a verified stored one, else None."""
        pinned = self.pinned_dir(stage)
        if read_key(pinned) == key:
            locked = locked_md5(self.dvc_lock, pinned)
            if locked is not None and locked == dvc_md5(pinned):
                return Located(stage, key, pinned, "pinned")
            why = (
                f"has no entry in {self.dvc_lock}" if locked is None else f"changed since dvc repro (dvc.lock {locked})"
            )
            self._mismatch(pinned, f"{why}: not used")
        elif pinned.exists():
            other = str(read_key(pinned))[:16]
            self._mismatch(pinned, f"holds {stage} for other inputs (key {other}, this run {key[:16]})")
        return self._stored(stage, key)

    def _stored(self, stage: str, key: str) -> Located | None:
        """The store's output for `key` if its content still hashes to the seal written after it was built."""
        keyed = self.keyed_dir(stage, key)
        if read_key(keyed) != key:
            return None
        if not verify_seal(keyed):
            log.warning("%s: %s is damaged or unfinished (content differs from %s): rebuilding it", stage, keyed,
                        seal_path(keyed).name)  # fmt: skip
            return None
        return Located(stage, key, keyed, "stored")

    def _mismatch(self, pinned: Path, message: str) -> None:
        if self.cfg.on_mismatch == "refuse":
            raise StoreMismatch(
                f"{message}; run `dvc repro` to rebuild the pinned outputs, or store.on_mismatch=build to build this "
                f"run's own into the store",
                file=pinned,
            )
        log.warning("%s: %s; this run uses (or builds) its own in the store", pinned, message)

    def get_or_build(self, stage: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> Located:
        """The output for `inputs`: found (pinned/stored), or built by `build(folder)` into the store.

        Parallel jobs needing the same output take turns (a lock beside it): one builds, the others then find it.
        """
        key = digest(inputs)
        found = self.find(stage, key)
        if found is None:
            target = self.keyed_dir(stage, key)
            with exclusive(f"{target}.lock", f"data store {stage}"):
                found = self._stored(stage, key)  # built by another job while this one waited
                if found is None:
                    shutil.rmtree(target, ignore_errors=True)  # a damaged entry is replaced, never reused
                    build_into(target, inputs, build)
                    write_seal(target)
                    found = Located(stage, key, target, "built")
        log.info("%s: %s (%s)", stage, found.status, found.path)
        return found


def seal_path(folder: Path) -> Path:
    return folder.with_name(folder.name + SEAL_SUFFIX)


def write_seal(folder: Path) -> None:
    """The folder's content hash beside it, written last (atomically): a folder without a valid seal is unfinished
    or damaged."""
    tmp = folder.with_name(f".{folder.name}{SEAL_SUFFIX}.tmp-{os.getpid()}")
    tmp.write_text(content_sha256(folder) + "\n", "utf-8")
    tmp.replace(seal_path(folder))


def verify_seal(folder: Path) -> bool:
    try:
        return seal_path(folder).read_text("utf-8").strip() == content_sha256(folder)
    except OSError:
        return False
