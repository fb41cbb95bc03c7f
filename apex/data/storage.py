"""Splits on disk: one Parquet file per table per split, and a `manifest.json` with fingerprints and counts.

    <out_dir>/manifest.json
    <out_dir>/<split>/corpus.parquet, queries.parquet, qrels.parquet     for split in train, val, test

The folder is written beside the target and renamed into place, so a crash never leaves half a set of splits; an
existing folder is replaced only if it is empty or was written by `save_splits` (it has our manifest).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from apex.core.errors import InputError
from apex.data.config import SPLIT_NAMES
from apex.data.dataset import TABLES, Dataset
from apex.data.splits import splits_fingerprint

MANIFEST = "manifest.json"
FORMAT = "apex.splits/1"
_DTYPES = {"doc_id": "str", "title": "str", "text": "str", "query_id": "str", "relevance": "int64"}


def _is_ours(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_splits(
    splits: Mapping[str, Dataset], out_dir: str | os.PathLike[str], config: Mapping[str, Any] | None = None
) -> Path:
    """Write the splits (and, if given, the config that made them, into the manifest); returns the folder."""
    out = Path(out_dir)
    if set(splits) != set(SPLIT_NAMES):
        raise ValueError(f"expected the splits {list(SPLIT_NAMES)}, got {sorted(splits)}")
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or _is_ours(out))):
        raise FileExistsError(f"{out} exists and was not written by save_splits: refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    manifest: dict[str, Any] = {"format": FORMAT, "fingerprint": splits_fingerprint(splits), "splits": {}}
    if config is not None:
        manifest["config"] = dict(config)
    for split in SPLIT_NAMES:
        ds = splits[split]
        (tmp / split).mkdir(parents=True)
        for table_name, columns in TABLES.items():
            getattr(ds, table_name)[list(columns)].to_parquet(tmp / split / f"{table_name}.parquet", index=False)
        manifest["splits"][split] = {
            "name": ds.name,
            "source": ds.source,
            "fingerprint": ds.fingerprint(),
            **ds.counts(),
        }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")

    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError("file does not exist", file=path)
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file; all mean "not readable Parquet"
        raise InputError(f"is not readable Parquet ({err})", file=path) from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"lacks columns {missing}", file=path, field=missing[0])
    return table[list(columns)].astype({c: _DTYPES[c] for c in columns})


def load_splits(out_dir: str | os.PathLike[str]) -> dict[str, Dataset]:
    """Read what `save_splits` wrote; each split is validated and must match its manifest fingerprint."""
    folder = Path(out_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise InputError("file does not exist", file=manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"is not valid JSON ({err})", file=manifest_path) from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"is not a {FORMAT} manifest", file=manifest_path, field="format")

    splits: dict[str, Dataset] = {}
    for split in SPLIT_NAMES:
        entry = manifest.get("splits", {}).get(split)
        if not isinstance(entry, dict):
            raise InputError("split is missing from the manifest", file=manifest_path, record=split)
        tables = {name: _read_table(folder / split / f"{name}.parquet", cols) for name, cols in TABLES.items()}
        # Validate under the split folder's name, so an error points at the files read; then restore provenance.
        ds = Dataset(name=str(entry.get("name", split)), source=str(folder / split), **tables)
        ds.validate()
        ds = dataclasses.replace(ds, source=str(entry.get("source", folder / split)))
        if ds.fingerprint() != entry.get("fingerprint"):
            raise InputError(
                f"the tables on disk have fingerprint {ds.fingerprint()}, the manifest says {entry.get('fingerprint')}",
                file=manifest_path,
                record=split,
                field="fingerprint",
            )
        splits[split] = ds
    return splits


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest alone (fingerprints and counts), without reading the tables."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise InputError("file does not exist", file=path)
    return json.loads(path.read_text("utf-8"))
