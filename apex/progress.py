"""`progress` governs every progress bar: ours (tqdm, `disable=not progress`) and the libraries' own.

transformers 5 draws a "Loading weights" bar for every model load and huggingface_hub one per download; MLflow one
per artifact upload. With `progress=false` all of them stay off, so logs and CI output hold only log lines.
"""

from __future__ import annotations

import os


def set_progress_bars(enabled: bool) -> None:
    """Turn the third-party progress bars on or off for this process (and the processes it starts)."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "true" if enabled else "false"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "0" if enabled else "1"
    from transformers.utils import logging as hf_logging

    if enabled:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
