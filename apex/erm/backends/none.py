"""`erm: none`: plain text, no maps (the baseline arm). No keys besides its name."""

from __future__ import annotations

from dataclasses import dataclass

from apex.erm.config import ErmConfig
from apex.erm.registry import ErmBackend, register_backend


@dataclass(frozen=True)
class NoErmConfig(ErmConfig):
    name: str = "none"


BACKEND = register_backend(ErmBackend("none", NoErmConfig, answer=None))
