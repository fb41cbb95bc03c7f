"""Cross-process "compute once" locks for the on-disk caches (base embeddings, ERM answers, step-0 evaluation).

Parallel jobs of a sweep (joblib workers, SLURM tasks on a shared file system) often need the same cache entry at
the same moment. The first takes an exclusive lock on `<entry>.lock`, checks the cache again, computes and stores;
the others block on the lock and then find the entry. The lock is an OS file lock (`flock`/`LockFileEx` via the
`filelock` package): the kernel releases it when its holder dies, so a job killed while computing never blocks the
others — the next one in line finds no entry and computes it. Entries themselves must still be written atomically
(temporary file or folder, then rename; or one database transaction), so a reader never sees a partial one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("apex.core.locks")


@contextmanager
def exclusive(lock_path: str | os.PathLike[str], what: str, timeout: float = -1) -> Iterator[float]:
    """Hold the lock at `lock_path` for the body; yields the seconds spent waiting for another holder.

    `timeout` < 0 waits forever (the holder is alive: its death releases the lock); a `TimeoutError` names `what`.
    """
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    started = time.perf_counter()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("%s: another process holds %s; waiting for it", what, path.name)
        try:
            lock.acquire(timeout=timeout)
        except Timeout as error:
            raise TimeoutError(f"{what}: lock {path} still held after {timeout:.0f} s") from error
    waited = time.perf_counter() - started
    try:
        yield waited
    finally:
        lock.release()
