"""Base-model embeddings of the training queries and documents, computed once and reused from disk.

Every run of a sweep that shares the base model, the text view and the data (seeds, learning rates, LoRA ranks)
mines from the same vectors, so they are stored under

    <cache_dir>/<key>/queries.npy      (n_queries, dim) float32, rows in the queries table's order
    <cache_dir>/<key>/documents.npy    (n_documents, dim) float32, rows in the documents table's order
    <cache_dir>/<key>/manifest.json    key, its inputs, shapes

key = sha256 of {encoder.identity(), view name, sha256 of the (id, text) rows of both tables}. The entry is
written into a temporary folder that is renamed into place, so a reader sees a whole entry or none; a damaged
entry (missing file, wrong shape) is treated as a miss and rewritten.

Parallel jobs of a sweep ask for the same key at the same moment: a miss is computed under the file lock
`<cache_dir>/.locks/<key>.lock` (`apex.core.locks`), so one job encodes while the others wait and then read its entry.
A job killed while encoding releases the lock with its death and leaves at most a `.<key>.tmp-*` folder, which no
reader looks at and the next writer of that key removes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apex.core.integrity import SEAL_FILE, is_sealed, seal
from apex.core.locks import exclusive
from apex.model.protocol import TextEncoder

log = logging.getLogger("apex.sampling")

FORMAT = "apex.base_embeddings/1"
MANIFEST = "manifest.json"
LOCKS = ".locks"  # lock files live on (deleting a lock file another process waits on would break the lock)


@dataclass
class BaseEmbeddings:
    """Row i of `queries` / `documents` embeds row i of the tables they were computed from."""

    queries: np.ndarray  # (n_queries, dim) float32, unit rows
    documents: np.ndarray  # (n_documents, dim) float32, unit rows
    key: str
    cache_hit: bool
    path: Path
    encode_seconds: float  # 0.0 on a hit


def data_hash(queries: pd.DataFrame, documents: pd.DataFrame) -> str:
    """sha256 over the (id, text) rows of both tables, in order (row order fixes which vector is which)."""
    digest = hashlib.sha256()
    for table_name, table, id_column in (("queries", queries, "query_id"), ("documents", documents, "doc_id")):
        digest.update(json.dumps([table_name, len(table)]).encode("utf-8") + b"\n")
        for row in zip(table[id_column].tolist(), table["text"].tolist(), strict=True):
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def cache_key(identity: dict[str, Any], view: str, data_digest: str) -> str:
    """sha256 (hex) of the canonical JSON of everything the base vectors depend on."""
    payload = {"format": FORMAT, "identity": identity, "view": view, "data": data_digest}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_vectors(vectors: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    """The encoder's promise (n, dim) float32 unit rows, checked: a broken one would corrupt every cosine."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != n_rows:
        raise ValueError(f"encoder returned shape {vectors.shape} for {n_rows} {what}")
    vectors = vectors.astype(np.float32, copy=False)
    if n_rows:
        norms = np.linalg.norm(vectors, axis=1)
        worst = int(np.argmax(np.abs(norms - 1.0)))
        if not np.all(np.isfinite(norms)) or abs(norms[worst] - 1.0) > 1e-3:
            raise ValueError(f"encoder returned a non-unit vector for {what} row {worst} (norm {norms[worst]})")
    return vectors


class BaseEmbeddingCache:
    """On-disk store of base-model embeddings, one folder per cache key (see the module docstring)."""

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.cache_dir = Path(cache_dir)

    def path_for(self, key: str) -> Path:
        return self.cache_dir / key

    def load_or_encode(
        self,
        encoder: TextEncoder,
        queries: pd.DataFrame,
        documents: pd.DataFrame,
        *,
        view: str,
        progress: bool = False,
    ) -> BaseEmbeddings:
        """Return the embeddings of `queries.text` and `documents.text`, from disk if this exact input was seen."""
        identity = encoder.identity()
        key = cache_key(identity, view, data_hash(queries, documents))
        folder = self.path_for(key)
        cached = self._load(folder, len(queries), len(documents))
        if cached is None:  # a miss: compute under the key's lock, unless another job stored it while we waited
            with exclusive(self.cache_dir / LOCKS / f"{key}.lock", f"base embeddings {key[:12]}"):
                cached = self._load(folder, len(queries), len(documents))
                if cached is None:
                    return self._encode_and_store(encoder, queries, documents, key, identity, view, progress)
        log.info(
            "base embeddings: cache hit %s (view %s, %d queries, %d documents)",
            key[:12],
            view,
            len(queries),
            len(documents),
        )
        return BaseEmbeddings(cached[0], cached[1], key, True, folder, 0.0)

    def _encode_and_store(
        self,
        encoder: TextEncoder,
        queries: pd.DataFrame,
        documents: pd.DataFrame,
        key: str,
        identity: dict[str, Any],
        view: str,
        progress: bool,
    ) -> BaseEmbeddings:
        """Encode both tables and store the entry; the caller holds the key's lock."""
        folder = self.path_for(key)
        log.info(
            "base embeddings: cache miss %s (view %s): encoding %d queries and %d documents",
            key[:12],
            view,
            len(queries),
            len(documents),
        )
        start = time.perf_counter()
        q = _check_vectors(
            encoder.encode(list(queries["text"]), "query", show_progress=progress), len(queries), "queries"
        )
        d = encoder.encode(list(documents["text"]), "document", show_progress=progress)
        d = _check_vectors(d, len(documents), "documents")
        if q.shape[1] != d.shape[1]:
            raise ValueError(f"encoder returned dim {q.shape[1]} for queries but {d.shape[1]} for documents")
        seconds = time.perf_counter() - start
        manifest = {
            "format": FORMAT,
            "key": key,
            "identity": identity,
            "view": view,
            "n_queries": len(queries),
            "n_documents": len(documents),
            "dim": int(q.shape[1]),
            "encode_seconds": round(seconds, 3),
        }
        self._store(folder, q, d, manifest)
        return BaseEmbeddings(q, d, key, False, folder, seconds)

    def _load(self, folder: Path, n_queries: int, n_documents: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not (folder / MANIFEST).is_file():
            return None
        if not is_sealed(folder):  # garbled vectors of the right shape pass every other check
            log.warning("base embeddings: cache entry %s is damaged (content differs from its %s): recomputing",
                        folder, SEAL_FILE)  # fmt: skip
            return None
        try:
            manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
            q = np.load(folder / "queries.npy")
            d = np.load(folder / "documents.npy")
        except (OSError, ValueError) as err:
            log.warning("base embeddings: damaged cache entry %s (%s): recomputing", folder, err)
            return None
        shapes_ok = (
            manifest.get("format") == FORMAT
            and q.dtype == np.float32
            and d.dtype == np.float32
            and q.shape == (n_queries, manifest.get("dim"))
            and d.shape == (n_documents, manifest.get("dim"))
        )
        if not shapes_ok:
            log.warning("base embeddings: cache entry %s does not match its manifest: recomputing", folder)
            return None
        return q, d

    def _store(self, folder: Path, q: np.ndarray, d: np.ndarray, manifest: dict[str, Any]) -> None:
        """Write into a sibling temporary folder, manifest last, then rename it into place (atomic on POSIX)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.cache_dir.glob(f".{folder.name}.tmp-*"):  # left by a writer killed mid-way (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.cache_dir / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            np.save(tmp / "queries.npy", q)
            np.save(tmp / "documents.npy", d)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", "utf-8")
            seal(tmp)  # last
            if folder.exists():
                # Only a damaged entry reaches here (a sound one was a hit): replace it.
                shutil.rmtree(folder, ignore_errors=True)
            try:
                tmp.rename(folder)
            except OSError:
                # Another process stored the same key first; its entry holds the same vectors.
                log.info("base embeddings: %s was stored concurrently; keeping that entry", folder.name[:12])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
