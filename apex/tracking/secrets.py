"""Keep secrets out of MLflow, logs and artifacts.

Secrets live only in the environment. Before anything is logged, every value of an environment variable whose
name marks it as a secret is replaced by ``***``; config values that look like API keys are refused outright.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
KEY_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,})")
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first, so a secret containing another is fully hidden


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every secret value from the environment, and anything shaped like an API key, by ``***``."""
    for value in secret_values(environ):
        text = text.replace(value, "***")
    return KEY_SHAPE.sub("***", text)


def scrub_mapping(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {k: scrub(v, environ) if isinstance(v, str) else v for k, v in values.items()}


def reject_secrets_in_config(flat: Mapping[str, Any]) -> None:
    """A key pasted into a config file would be logged as a param: refuse it and say where it is."""
    for name, value in flat.items():
        if isinstance(value, str) and (KEY_SHAPE.search(value) or value in secret_values()):
            raise ValueError(
                f"config value {name!r} looks like a secret; put API keys in the environment (OPENAI_API_KEY), "
                "never in config files or overrides"
            )
