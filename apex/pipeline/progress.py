"""`progress` governs every progress bar: ours (`apex.core.progress.progress_bar`) and the libraries' own.

Bars are drawn only on a terminal: in a log file they would be carriage-return redraws glued to log lines, so there
ours become a plain line every 30 s and the libraries' are off.

transformers 5 draws a "Loading weights" bar for every model load and huggingface_hub one per download; MLflow one
per artifact upload. With `progress=false` all of them stay off, so logs and CI output hold only log lines, among
them one line per recipe stage with its time (`timed_stage`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from apex.core.progress import on_terminal

log = logging.getLogger("apex.pipeline.recipe")
P = ParamSpec("P")
R = TypeVar("R")


def set_progress_bars(enabled: bool) -> None:
    """Turn the third-party progress bars on or off for this process (and the processes it starts); off whenever
    stderr is not a terminal."""
    enabled = enabled and on_terminal()
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "true" if enabled else "false"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "0" if enabled else "1"
    from transformers.utils import logging as hf_logging

    if enabled:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def timed_stage(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a recipe stage: one INFO line when it ends, e.g. `stage views: 12.3 s` (shown with progress off too)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            log.info("stage %s: %.1f s", name, time.perf_counter() - started)
            return result

        return wrapped

    return decorate
