"""A folder's content hash, written last and checked on read: caches never serve a damaged or unfinished entry.

    <entry>/content.sha256      sha256 over the (relative path, file sha256) lines of every other file

`seal(folder)` writes it after every other file; `is_sealed(folder)` recomputes it. A cache treats an entry whose
seal is missing or wrong as absent: it recomputes the entry and replaces it (never reporting the damaged one as
stored). Garbled bytes of the right shape (a rewritten `.npy`, a changed `metrics.json`) are caught this way, which
shape checks and parsers alone do not catch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SEAL_FILE = "content.sha256"
_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """sha256 over the folder's files (the seal excluded), in sorted relative-path order."""
    digest = hashlib.sha256()
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.name != SEAL_FILE), key=lambda p: p.as_posix())
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\t{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def seal(folder: Path) -> None:
    """Write the folder's content hash; call it after every other file is written."""
    (Path(folder) / SEAL_FILE).write_text(folder_digest(Path(folder)) + "\n", "utf-8")


def is_sealed(folder: Path) -> bool:
    """True when the seal exists and the files still hash to it."""
    try:
        return (Path(folder) / SEAL_FILE).read_text("utf-8").strip() == folder_digest(Path(folder))
    except OSError:
        return False
