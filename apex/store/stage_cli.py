"""What the three DVC stage CLIs share: params.yaml sections as typed configs, and the shared cache folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apex.core.errors import ConfigError
from apex.core.params_file import read_params_file, read_section

DEFAULT_CACHE_DIR = "experiments/cache"


def read_config(params_file: Path, schema: Any, name: str) -> Any:
    """params.yaml's `name` section as its typed schema (a missing section is an InputError naming the file)."""
    section = read_section(params_file, name)
    try:
        return schema.from_cfg(section or {})
    except ConfigError as err:
        raise ConfigError(err.key, err.reason, source=params_file) from None


def cache_dir(params_file: Path) -> Path:
    """params.yaml's paths.cache_dir: runs and stages share the caches (ERM answers, base embeddings)."""
    return Path((read_params_file(params_file).get("paths") or {}).get("cache_dir", DEFAULT_CACHE_DIR))
