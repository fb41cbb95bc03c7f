"""The dataset shipped with apex: SQuAD v1.1 dev (CC BY-SA 4.0; see bundled/README.md for attribution)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from apex.core.errors import InputError

BUNDLED_SQUAD = Path(__file__).resolve().parent / "bundled" / "squad-v1.1-dev.json.gz"
BUNDLED_SQUAD_SHA256 = "5ef5752d50566ab538501116de1508326eefb6bf70026def7915309f30822727"
BUNDLED_SOURCE = "bundled:squad-v1.1-dev.json.gz"  # Dataset.source of the bundled default


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verified_bundled_squad(path: Path = BUNDLED_SQUAD, expected: str = BUNDLED_SQUAD_SHA256) -> Path:
    """The bundled file's path, after checking its sha256 (1 MB: a few milliseconds) so a damaged or swapped file
    never silently changes every result."""
    if not path.is_file():
        raise InputError("bundled dataset is missing (reinstall apex)", file=path)
    actual = sha256_of(path)
    if actual != expected:
        raise InputError(f"sha256 {actual} does not match the shipped {expected}", file=path, field="sha256")
    return path
