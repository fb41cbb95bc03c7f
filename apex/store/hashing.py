"""Content hashes of stored outputs: sha256 of a file or folder, and DVC's own md5 (what dvc.lock records).

DVC 3 hashes a file as the md5 of its bytes, and a folder as the md5 of the JSON list of its files
(`[{"md5": ..., "relpath": ...}, ...]`, sorted by relpath) with ".dir" appended. Computing the same value here lets
a run tag exactly the hash that `dvc.lock` pins, and check that the files it reads are still those files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

_CHUNK = 1 << 20


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_of(folder: Path) -> list[Path]:
    """Regular files under `folder`, sorted by their posix relative path (DVC's order)."""
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())


def dvc_md5(path: str | Path) -> str:
    """The md5 DVC 3 records for `path` in dvc.lock (a folder's ends in ".dir")."""
    path = Path(path)
    if path.is_file():
        return _digest(path, "md5")
    entries = [{"md5": _digest(f, "md5"), "relpath": f.relative_to(path).as_posix()} for f in files_of(path)]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def content_sha256(path: str | Path) -> str:
    """sha256 over a file's bytes, or over a folder's (relative path, file sha256) lines."""
    path = Path(path)
    if path.is_file():
        return _digest(path, "sha256")
    digest = hashlib.sha256()
    for f in files_of(path):
        digest.update(f"{f.relative_to(path).as_posix()}\t{_digest(f, 'sha256')}\n".encode())
    return digest.hexdigest()
