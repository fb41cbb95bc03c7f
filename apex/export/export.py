"""``export_run``: one stop point of one run → a sentence-transformers directory, its adapter, a model card.

Layout of the output folder::

    <out>/                 sentence-transformers model: modules.json, config.json, model.safetensors, tokenizer,
                           1_Pooling/, 2_Normalize/, config_sentence_transformers.json (prompts)
    <out>/README.md        the model card
    <out>/adapter/         the LoRA adapter alone (peft), its base named by public id
    <out>/apex_export.json provenance and checks (run id, step, cosines, rank@1 re-scored)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient

from apex.export.card import model_card
from apex.export.merge import adapter_weights, attach_adapter, export_model_config, load_base, merge
from apex.export.source import RunSource, download_adapter, load_source
from apex.export.st_model import write_sentence_transformer
from apex.export.verify import (
    TestSplit,
    VerificationError,
    harness_embeddings,
    load_test_split,
    probe_export,
    probe_merge,
    rank_check,
)
from apex.model.config import ModelConfig
from apex.model.encoder import Encoder
from apex.model.loading import public_base
from apex.model.precision import resolve_bf16
from apex.tracking import names

log = logging.getLogger("apex.export")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LARGE_MODEL_PARAMETERS = 2_000_000_000  # above this, "auto" stores bf16 (a 7B model: 14 GB instead of 28)


@dataclass
class ExportResult:
    out_dir: Path
    run_id: str
    step: int
    provenance: dict[str, Any]
    rank_check: dict[str, Any] | None
    seconds: float


def default_out_dir(source: RunSource, step: int) -> Path:
    return Path("experiments/exports") / f"{source.run_id[:12]}-step{step}"


def _dtype(name: str, model: torch.nn.Module) -> torch.dtype:
    if name == "auto":
        large = sum(p.numel() for p in model.parameters()) > LARGE_MODEL_PARAMETERS
        return torch.bfloat16 if large else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keep_adapter(adapter_dir: Path, out_dir: Path, cfg: ModelConfig) -> str:
    """Copy the adapter beside the model, naming its base by public id; returns the weights' sha256."""
    target = out_dir / "adapter"
    shutil.copytree(adapter_dir, target, dirs_exist_ok=True)
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = public_base(cfg.source)[0]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return _sha256(target / "adapter_model.safetensors")


def build_export(
    source: RunSource, step: int, adapter_dir: Path, out_dir: Path, dtype: str, cache_dir: str | None,
    test: TestSplit | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:  # fmt: skip
    """Merge, probe, write, and (with ``test``) re-score; returns (provenance, rank check)."""
    cfg = source.typed().model
    if cache_dir:
        cfg = dataclasses.replace(cfg, cache_dir=cache_dir)
    loaded = load_base(cfg)
    tokenizer = loaded.tokenizer
    encoder = Encoder(loaded, export_model_config(cfg), torch.device("cpu"))
    encoder.model = attach_adapter(loaded.model, adapter_dir)
    harness = harness_embeddings(encoder, test) if test is not None else None  # fine-tuned, unmerged, float32
    zero = all(not torch.any(t != 0) for k, t in adapter_weights(adapter_dir).items() if "lora_B" in k)
    merged, probes = probe_merge(encoder, lambda: merge(encoder.model), adapter_is_zero=zero)
    target_dtype = _dtype(dtype, merged)
    write_sentence_transformer(merged, tokenizer, cfg, out_dir, target_dtype)
    from sentence_transformers import SentenceTransformer

    encoder.model = merged.float()  # compare in float32: both sides then compute the same numbers
    st_model = SentenceTransformer(str(out_dir), device="cpu", model_kwargs={"dtype": torch.float32})
    probe_export(st_model, encoder, probes)
    checked = None
    if test is not None and harness is not None:
        run_rank = source.metrics.get(step, {}).get("rank_at_1")
        # The run's evaluation precision, if it ran on this kind of CPU. eval.autocast (default off) arrived after
        # runs that always evaluated under model.bf16's autocast: a config without the key is such a run.
        autocast = source.config.get("eval", {}).get("autocast", True)
        run_bf16 = bool(autocast) and resolve_bf16(cfg.bf16, torch.device("cpu"))
        checked = rank_check(st_model, test, harness, run_rank, run_bf16).as_dict()
        if not checked["equal"]:
            raise VerificationError(f"the export does not reproduce the fine-tuned model on the test split: {checked}")
    tags = source.run.data.tags
    provenance = {
        "run_id": source.run_id,
        "run_name": source.run_name,
        "experiment_id": source.run.info.experiment_id,
        "step": step,
        "stop_fraction": source.stops.get(step, float("nan")),
        "base_model": public_base(cfg.source)[0],
        "weights_hash": loaded.weights_hash,
        "dimension": int(merged.config.hidden_size),
        "dtype": str(target_dtype).removeprefix("torch."),
        "cell": tags.get(names.CELL),
        "git_commit": tags.get(names.GIT_COMMIT),
        "git_dirty": tags.get(names.GIT_DIRTY),
        "dataset_fingerprint": tags.get(names.DATASET_FINGERPRINT),
        "adapter_sha256": _keep_adapter(adapter_dir, out_dir, cfg),
        **dataclasses.asdict(probes),
    }
    return provenance, checked


def export_run(
    client: MlflowClient,
    run_id: str,
    step: int | str | None = None,
    out_dir: Path | None = None,
    *,
    dtype: str = "auto",
    verify: bool = True,
    cache_dir: str | None = None,
) -> ExportResult:
    """Export one stop point of a run (see the module docstring for the layout); ``step`` None = the last one."""
    started = time.perf_counter()
    source = load_source(client, run_id)
    chosen = source.choose_step(step)
    out_dir = out_dir or default_out_dir(source, chosen)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty: choose another --out or remove it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    test = _test_split(source) if verify else None
    with tempfile.TemporaryDirectory(prefix="apex-adapter-") as tmp:
        adapter_dir = download_adapter(client, source, chosen, Path(tmp))
        provenance, rank_check = build_export(source, chosen, adapter_dir, out_dir, dtype, cache_dir, test)
    metrics = source.metrics.get(chosen, {})
    cfg = source.typed().model
    zero_shot = source.metrics.get(0, {})
    (out_dir / "README.md").write_text(
        model_card(cfg, source.config, provenance, metrics, rank_check, zero_shot=zero_shot)
    )
    (out_dir / "apex_export.json").write_text(
        json.dumps({**provenance, "test_metrics": metrics, "rank_check": rank_check}, indent=2, default=str)
    )
    normal_modes(out_dir)
    seconds = time.perf_counter() - started
    log.info("exported run %s step %d to %s in %.1f s", run_id, chosen, out_dir, seconds)
    return ExportResult(out_dir, run_id, chosen, provenance, rank_check, seconds)


def normal_modes(out_dir: Path) -> None:
    """Files 0666 and folders 0777 less the umask (usually 0644 / 0755), as `cp` would leave them: some writers
    (safetensors' atomic save, temporary staging folders) leave 0600 / 0700, which other users cannot read."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    out_dir.chmod(0o777 & ~umask)
    for path in out_dir.rglob("*"):
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _test_split(source: RunSource) -> TestSplit | None:
    try:
        return load_test_split(source.typed(), source.run.data.tags.get(names.DATASET_FINGERPRINT))
    except VerificationError as error:
        log.warning("the test split will not be re-scored: %s", error)
        return None
