"""`erm: spacy`, the offline CPU default: spaCy NER + dependency rules → the same map schema as the LLM backends
(the extractor itself: apex.erm.spacy_backend, imported only when maps are built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apex.erm.cache import ErmCache, Outcome, Scope
from apex.erm.config import MapsConfig, _bad
from apex.erm.registry import ErmBackend, register_backend


@dataclass(frozen=True)
class SpacyConfig(MapsConfig):
    """`model` "" = the installed English model (resolved, with its version, into the cache key)."""

    name: str = "spacy"
    spacy_batch_size: int = 64
    spacy_noun_chunks: bool = True
    spacy_n_process: int = 0  # worker processes for spaCy maps; 0 = one per usable CPU (maps are the same)

    def validate(self) -> None:
        super().validate()
        if self.spacy_batch_size <= 0:
            raise _bad("spacy_batch_size", f"must be > 0, got {self.spacy_batch_size}")
        if self.spacy_n_process < 0:
            raise _bad("spacy_n_process", f"must be >= 0, got {self.spacy_n_process}")

    def cache_settings(self) -> dict[str, object]:
        return {"noun_chunks": self.spacy_noun_chunks}


def scope(task: Any, cfg: SpacyConfig) -> Scope:
    """The spaCy model's name and version and the extractor's version stand for the model and the prompt."""
    from apex.erm.spacy_backend import EXTRACTOR_VERSION, resolve_model

    # The noun-chunk switch changes the maps, so it is part of the extractor version in the key.
    version = EXTRACTOR_VERSION if cfg.spacy_noun_chunks else f"{EXTRACTOR_VERSION}+no-noun-chunks"
    return Scope(task.kind, "spacy", resolve_model(cfg.model), version)


def answer(items: list, task: Any, cfg: SpacyConfig, cache: ErmCache, scope: Scope, progress: bool) -> Any:
    from apex.core.progress import progress_bar
    from apex.erm.llm import Counters
    from apex.erm.spacy_backend import extract_maps, load_nlp

    del task  # maps only (`tasks` below)
    nlp, _ = load_nlp(cfg.model)
    nlp.max_length = max(nlp.max_length, cfg.max_input_chars + 1)  # texts are cut to max_input_chars already
    size = cfg.spacy_batch_size
    bar = progress_bar(total=len(items), desc="erm map (spacy)", enabled=progress, unit="doc")
    maps = extract_maps(
        [p.text for p in items], nlp, batch_size=size, noun_chunks=cfg.spacy_noun_chunks, n_process=cfg.spacy_n_process
    )
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        # One transaction per batch: spaCy is fast enough that a commit per document would dominate.
        done = [Outcome(p.key, p.text_sha256, True, next(maps).to_json()) for p in chunk]
        cache.put(scope, done)
        bar.update(len(chunk))
    bar.close()
    return Counters()


BACKEND = register_backend(
    ErmBackend(
        "spacy",
        SpacyConfig,
        answer=answer,
        scope=scope,
        operational=("spacy_batch_size", "spacy_n_process", "retry_failed"),
    )
)
