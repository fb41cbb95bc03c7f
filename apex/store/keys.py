"""The inputs that determine each stored output, and the key (sha256 of their canonical JSON) that addresses it.

prepared: the splits' content fingerprint (splits are cheap to recompute, so a run recomputes and compares them).
negatives: the splits, the base model's identity, the sampler settings, the seed and the sampling/model code
     (mined in the plain view, before the maps: the maps depend on them, not the other way round).
erm: the splits' fingerprint, the ERM identity (backend, model, prompt/extractor version, generation settings), the
     ERM code and, per split mapped only in part (train), the set of needed documents (apex.erm.needed).
Each part is derived from the selected components: a component's config holds only its keys, and the keys its
record calls operational (concurrency, timeouts, prices, batch sizes) are left out: they change how fast an output
is made, not what it holds. The code each stage's output depends on is declared once, in dvc.yaml (`STAGE_CODE`
reads it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from apex.core.secrets import scrub
from apex.erm.config import ErmConfig
from apex.erm.registry import ERM_BACKENDS
from apex.model.config import ModelConfig
from apex.sampling.config import SamplerConfig
from apex.sampling.registry import SAMPLERS

REPO_CODE = Path(__file__).resolve().parents[1]  # the apex package
# The code each stage's output depends on, relative to the apex package: the one declaration. dvc.yaml lists the
# same paths (under apex/) as the stage's deps; tests/test_stage_code.py fails when the two disagree.
STAGE_CODE = {
    "prepared": ("core/errors.py", "data", "store"),
    "negatives": ("core/registry.py", "model", "sampling", "search", "store"),
    "erm": ("core/registry.py", "erm", "store"),
}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_version(stage: str) -> str:
    """sha256 over the source files of the packages `stage` depends on (so a code change is a new key)."""
    h = hashlib.sha256()
    for part in STAGE_CODE[stage]:
        root = REPO_CODE / part
        tree = [root] if root.is_file() else root.rglob("*")
        files = sorted(p for p in tree if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            h.update(
                f"{path.relative_to(REPO_CODE).as_posix()}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode()
            )
    return h.hexdigest()


def erm_identity(cfg: ErmConfig) -> dict[str, Any]:
    from apex.erm.prompts import MAP_TASK
    from apex.erm.render import RENDER_VERSION
    from apex.erm.runner import scope_of

    # The answer cache's namespace (resolves spaCy's model name and version); none for a backend that maps nothing.
    scope = None if ERM_BACKENDS.get(cfg.name).scope is None else dataclasses.asdict(scope_of(MAP_TASK, cfg))
    # Scrubbed: a URL with a password (given through ${oc.env:...}) must not reach inputs.json or the key.
    settings = {k: scrub(v) if isinstance(v, str) else v for k, v in ERM_BACKENDS.identity(cfg).items()}
    return {"scope": scope, "render": RENDER_VERSION, "settings": settings}


def mapped_splits(eval_view: str) -> tuple[str, ...]:
    """The splits whose corpus gets maps: train always (only its needed documents, apex.erm.needed); val and test
    only when evaluation reads maps, then whole (an LLM backend bills every document: nothing is mapped that no
    stage reads)."""
    return ("train", "val", "test") if eval_view == "erm" else ("train",)


def maps_inputs(
    splits_fingerprint: str,
    cfg: ErmConfig,
    mapped: tuple[str, ...] = ("train",),
    needed: dict[str, dict[str, object]] | None = None,
) -> dict[str, Any]:
    """`needed`: split -> `NeededDocuments.key()` for the splits mapped only in part (train); the others whole."""
    return {
        "stage": "erm",
        "splits": splits_fingerprint,
        "mapped": list(mapped),
        "needed": needed or {},
        "erm": erm_identity(cfg),
        "code": code_version("erm"),
    }


def negatives_inputs(
    splits_fingerprint: str, model: ModelConfig | None, sampler: SamplerConfig, seed: int
) -> dict[str, Any]:
    """`model` None, or a sampler that reads no embeddings (in_batch): no base model determines the output."""
    reads_vectors = SAMPLERS.get(sampler.name).needs_embeddings
    base_model = model.base_identity() if model is not None and reads_vectors else {}
    return {
        "stage": "negatives",
        "splits": splits_fingerprint,
        "view": "plain",  # always: the negatives say which documents need maps, so they come first
        "base_model": base_model,
        "sampler": SAMPLERS.identity(sampler),
        "seed": seed,
        "code": code_version("negatives"),
    }


def prepared_inputs(splits_fingerprint: str) -> dict[str, Any]:
    """Splits are addressed by their content: a run recomputes them (seconds) and compares the fingerprint."""
    return {"stage": "prepared", "fingerprint": splits_fingerprint}
