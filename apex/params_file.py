"""The plain `params.yaml` that the DVC stages read (DVC never composes Hydra configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from apex.errors import InputError


def read_section(path: Path, section: str) -> Any:
    """The `section` of a YAML params file as plain Python values; a clear InputError naming the file otherwise."""
    if not path.is_file():
        raise InputError("file does not exist", file=path)
    try:
        params = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # OmegaConf wraps YAML errors in several types; all mean "unreadable params file"
        raise InputError(f"is not readable YAML ({err})", file=path) from err
    if not isinstance(params, dict) or section not in params:
        raise InputError(f"has no '{section}' section", file=path, record=section)
    return params[section]
