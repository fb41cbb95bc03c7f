"""Lazy package exports (PEP 562): `import apex.model.config` must not import torch, peft or mlflow.

Hydra composes before the job runs and `apex.core.configs` reads every group's schema; with eager package
`__init__`s that cost ~10 s of imports on a 2-core machine before `--help` or `--cfg job` could answer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `exports[name]` (a submodule of `package`) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
