"""The inputs that determine each stored output, and the key (sha256 of their canonical JSON) that addresses it.

prepared: the splits' content fingerprint (splits are cheap to recompute, so a run recomputes and compares them).
negatives: the splits, the base model's identity, the sampler settings, the seed and the sampling/model code
     (mined in the plain view, before the maps: the maps depend on them, not the other way round).
erm: the splits' fingerprint, the ERM identity (backend, model, prompt/extractor version, generation settings), the
     ERM code and, per split mapped only in part (train), the set of needed documents (apex.erm.needed).
Operational knobs (concurrency, timeouts, prices, paths) are left out: they change how fast an output is made, not
what it holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from apex.core.secrets import scrub
from apex.erm.config import ErmConfig
from apex.model.config import ModelConfig
from apex.sampling.config import SamplerConfig

REPO_CODE = Path(__file__).resolve().parents[1]  # the apex package
# Code each stage's output depends on (the same folders dvc.yaml lists as the stage's deps).
STAGE_CODE = {
    "prepared": ("data",),
    "erm": ("erm",),
    "negatives": ("sampling", "model", "search"),
}
_ERM_OPERATIONAL = (
    "concurrency", "max_retries", "timeout_s", "backoff_base_s", "backoff_max_s", "preflight_timeout_s",
    "price_prompt_per_1m", "price_completion_per_1m", "batch_discount", "batch_poll_s", "batch_max_wait_s",
    "mode", "spacy_batch_size", "spacy_n_process", "retry_failed",
    "base_url",  # where the model is served, not which model; and a URL may carry a password (never stored)
)  # fmt: skip
_MODEL_TRAINING_ONLY = ("name", "cache_dir", "lora_target_modules", "gradient_checkpointing", "dropout")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_version(stage: str) -> str:
    """sha256 over the source files of the packages `stage` depends on (so a code change is a new key)."""
    h = hashlib.sha256()
    for package in STAGE_CODE[stage]:
        root = REPO_CODE / package
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            h.update(
                f"{path.relative_to(REPO_CODE).as_posix()}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode()
            )
    return h.hexdigest()


def erm_identity(cfg: ErmConfig) -> dict[str, Any]:
    from apex.erm.prompts import MAP_TASK
    from apex.erm.render import RENDER_VERSION
    from apex.erm.runner import scope_of

    scope = scope_of(MAP_TASK, cfg)  # the answer cache's namespace: resolves spaCy's model name and version
    # Scrubbed: a base_url with a password (given through ${oc.env:...}) must not reach inputs.json or the key.
    settings = {k: scrub(v) if isinstance(v, str) else v for k, v in vars(cfg).items() if k not in _ERM_OPERATIONAL}
    return {"scope": dataclasses.asdict(scope), "render": RENDER_VERSION, "settings": settings}


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
    """`model` None: the sampler reads no embeddings (in_batch), so no base model determines the output."""
    base_model = {} if model is None else {k: v for k, v in vars(model).items() if k not in _MODEL_TRAINING_ONLY}
    return {
        "stage": "negatives",
        "splits": splits_fingerprint,
        "view": "plain",  # always: the negatives say which documents need maps, so they come first
        "base_model": base_model,
        "sampler": sampler.as_dict(),
        "seed": seed,
        "code": code_version("negatives"),
    }


def prepared_inputs(splits_fingerprint: str) -> dict[str, Any]:
    """Splits are addressed by their content: a run recomputes them (seconds) and compares the fingerprint."""
    return {"stage": "prepared", "fingerprint": splits_fingerprint}
