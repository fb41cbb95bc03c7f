"""Content-addressed, crash-safe store of LLM (and spaCy) answers: SQLite in WAL mode, one row per document.

Key = sha256 over (task kind, backend, model, prompt version, sha256 of the document text). Anything that changes the
answer's meaning is in the key; the document id is not (two ids with one text share one answer, and renaming ids
costs nothing). Generation settings (temperature, seed, structured-output mode) are recorded per row, not keyed.

Every finished document is committed on its own (synchronous=FULL), so a process killed at any instant loses at most
the requests in flight, never a finished document, and a re-run sends no request for a key already stored. Failures
live in their own table: a re-run skips them (reporting them as failed) unless asked to retry them.

Parallel jobs (a sweep's joblib workers, SLURM tasks on a shared file system) that need answers of one scope hold
the scope's file lock (`<cache_dir>/.locks/<kind>-<scope hash>.lock`, see `apex.core.locks`) from their first look-up
until their last answer is stored: the second job waits, then finds every answer stored and sends no request. A job
killed mid-way releases the lock with its death; the next one finds the answers committed so far and asks only for
the rest.

The store lives outside any DVC output (DVC deletes a stage's outputs before re-running it); the caller passes the
directory. It holds answers and token counts only: no request headers, no API key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apex.core.errors import InputError
from apex.core.locks import exclusive

DB_NAME = "erm.sqlite"
_CHUNK = 500  # keys per IN (...) query; SQLite's default limit on host parameters is 32766

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,
    prompt_version TEXT NOT NULL, text_sha256 TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    response_model TEXT NOT NULL, system_fingerprint TEXT NOT NULL, settings TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,
    prompt_version TEXT NOT NULL, text_sha256 TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    response_model TEXT NOT NULL, system_fingerprint TEXT NOT NULL, settings TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, scope TEXT NOT NULL, keys TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL);
"""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Scope:
    """What, besides the text, determines an answer: the namespace of a set of cache keys."""

    kind: str
    backend: str
    model: str
    prompt_version: str

    def key(self, text: str) -> str:
        parts = (self.kind, self.backend, self.model, self.prompt_version, text_sha256(text))
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()

    def label(self) -> str:
        return "\x1f".join((self.kind, self.backend, self.model, self.prompt_version))


@dataclass(frozen=True)
class Outcome:
    """The end of one document's requests: ok with a canonical payload, or failed with a reason."""

    key: str
    text_sha256: str
    ok: bool
    payload: str = ""
    reason: str = ""
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    response_model: str = ""
    system_fingerprint: str = ""


class ErmCache:
    """The SQLite store under `cache_dir`; use from one thread (the pipeline's main thread writes all rows)."""

    def __init__(self, cache_dir: Path, settings: dict[str, object] | None = None) -> None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / DB_NAME
        self._settings = json.dumps(settings or {}, sort_keys=True)
        with self.named_errors():
            self._conn = sqlite3.connect(self.path, timeout=60.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    @contextmanager
    def named_errors(self) -> Iterator[None]:
        """A damaged database (truncated, overwritten) becomes one line naming the file and what to do."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
                raise
            raise InputError(
                f"the ERM answer cache is damaged ({err}); move it aside and re-run (answers not in it are asked "
                f"again), or restore it from a copy",
                file=self.path,
            ) from None

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def claim(self, scope: Scope) -> Iterator[None]:
        """Hold the scope's cross-process lock: look up, answer what is missing and store it inside the body."""
        digest = hashlib.sha256(scope.label().encode("utf-8")).hexdigest()[:16]
        lock = self.path.parent / ".locks" / f"{scope.kind}-{digest}.lock"
        with exclusive(lock, f"erm answers ({scope.kind}, {scope.model})"):
            yield

    def __enter__(self) -> ErmCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _select(self, table: str, columns: str, keys: Sequence[str]) -> list[tuple]:
        rows: list[tuple] = []
        with self.named_errors():
            for i in range(0, len(keys), _CHUNK):
                chunk = list(keys[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows += self._conn.execute(f"SELECT {columns} FROM {table} WHERE key IN ({marks})", chunk).fetchall()
        return rows

    def results(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """Stored successful outcomes for those of `keys` that have one."""
        cols = (
            "key, text_sha256, payload, attempts, prompt_tokens, completion_tokens, response_model, system_fingerprint"
        )
        return {
            r[0]: Outcome(r[0], r[1], True, r[2], "", r[3], r[4], r[5], r[6], r[7])
            for r in self._select("results", cols, keys)
        }

    def failures(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """Stored failures for those of `keys` that have one (a key is never in both tables)."""
        cols = (
            "key, text_sha256, reason, attempts, prompt_tokens, completion_tokens, response_model, system_fingerprint"
        )
        return {
            r[0]: Outcome(r[0], r[1], False, "", r[2], r[3], r[4], r[5], r[6], r[7])
            for r in self._select("failures", cols, keys)
        }

    def put(self, scope: Scope, outcomes: Iterable[Outcome]) -> None:
        """Store outcomes in one transaction; a success replaces an earlier failure of the same key."""
        now = time.time()
        with self.named_errors(), self._conn:
            for o in outcomes:
                table = "results" if o.ok else "failures"
                text = o.payload if o.ok else o.reason
                self._conn.execute(
                    f"INSERT OR REPLACE INTO {table} VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        o.key, scope.kind, scope.backend, scope.model, scope.prompt_version, o.text_sha256, text,
                        o.attempts, o.prompt_tokens, o.completion_tokens, o.response_model, o.system_fingerprint,
                        self._settings, now,
                    ),
                )  # fmt: skip
                if o.ok:
                    self._conn.execute("DELETE FROM failures WHERE key = ?", (o.key,))

    # Batch API bookkeeping: a re-run polls the batches it already submitted instead of submitting them again.
    def open_batches(self, scope: Scope) -> list[tuple[str, list[str]]]:
        rows = self._conn.execute(
            "SELECT batch_id, keys FROM batches WHERE scope = ? AND status = 'open' ORDER BY created_at",
            (scope.label(),),
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def add_batch(self, scope: Scope, batch_id: str, keys: Sequence[str]) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?)",
                (batch_id, scope.label(), json.dumps(list(keys)), "open", time.time()),
            )

    def close_batch(self, batch_id: str, status: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE batches SET status = ? WHERE batch_id = ?", (status, batch_id))
