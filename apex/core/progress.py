"""`progress_bar`: a tqdm bar on a terminal, plain periodic log lines anywhere else.

A bar redraws itself with carriage returns and cursor codes; written to a log file or a CI log, those arrive glued
to the log lines around them. So a bar is drawn only when stderr is a terminal; otherwise the same call logs one
line at most every `interval` seconds and one when it ends (`erm map (spacy): 400/1367 (29%), 12 s, ~30 s left`).
Both accept what apex's callers use: iteration, `update(n)`, `set_postfix_str`, `clear`, `close`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("apex.progress")
LOG_INTERVAL_S = 30.0


def on_terminal() -> bool:
    """Whether stderr (where bars go) is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class LogProgress:
    """The file-friendly stand-in for a tqdm bar: a log line every `interval` seconds and one at the end."""

    def __init__(self, iterable: Iterable[Any] | None, desc: str, total: int | None, interval: float) -> None:
        self.iterable, self.desc, self.interval = iterable, desc, interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.postfix = total, 0, ""
        self.started = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line(now))

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def clear(self) -> None:
        """Nothing drawn, nothing to clear (tqdm's API: called before another line is printed)."""

    def line(self, now: float) -> str:
        elapsed = now - self.started
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        left = ""
        if self.total and 0 < self.n < self.total:
            left = f", ~{elapsed * (self.total - self.n) / self.n:.0f} s left"
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done}, {elapsed:.0f} s{left}{extra}"

    def close(self) -> None:
        # One closing line, only for work long enough to have been worth watching (no noise per quick batch).
        if not self.closed and time.monotonic() - self.started >= self.interval:
            log.info("%s (done)", self.line(time.monotonic()))
        self.closed = True


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
    interval: float = LOG_INTERVAL_S,
    **tqdm_kwargs: Any,
) -> Any:
    """A tqdm bar when `enabled` and stderr is a terminal; else `LogProgress` (log lines when enabled, else none)."""
    if enabled and on_terminal():
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, **tqdm_kwargs)
    return LogProgress(iterable, desc, total, interval if enabled else float("inf"))
