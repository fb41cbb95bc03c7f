"""The `ERM_BACKENDS` registry: `erm.name` → its record (config class, how it answers, the facts others need).

Each module of apex/erm/backends/ registers its backends; a new backend is a module there and a YAML file in
conf/erm/ (docs/extending.md). `apex.erm.runner` drives every backend through its record: cache look-up, then
`answer` for what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apex.core.registry import Registry
from apex.erm.config import ErmConfig

# answer(pending, task, cfg, cache, scope, progress) -> apex.erm.llm.Counters: answer every pending text, committing
# each finished answer to the cache as it goes (apex.erm.runner reads them back from there).
AnswerFn = Callable[..., Any]
ScopeFn = Callable[..., Any]  # scope(task, cfg) -> apex.erm.cache.Scope: the answer cache's namespace


@dataclass(frozen=True)
class ErmBackend:
    """One ERM backend. `answer` None: it writes no maps (erm=none, the plain-text arm)."""

    name: str
    config: type[ErmConfig]
    answer: AnswerFn | None
    scope: ScopeFn | None = None
    tasks: tuple[str, ...] = ("map",)  # the tasks it answers: "map" (documents), "query" (LLM-written queries)
    operational: tuple[str, ...] = ()  # keys that change how fast or how cheaply maps are made, never what they hold


ERM_BACKENDS: Registry[ErmBackend] = Registry("erm", "apex.erm.backends")


def register_backend(backend: ErmBackend) -> ErmBackend:
    return ERM_BACKENDS.register(backend)


def backend_of(cfg: ErmConfig) -> ErmBackend:
    return ERM_BACKENDS.get(cfg.name)
