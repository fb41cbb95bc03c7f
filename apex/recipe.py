"""The APEX-Embedding job as one readable recipe: data → ERMs → negatives → train → evaluate.

This is the only module that calls every stage and the only one that logs to MLflow. Each stage gets its typed
config section and tables, and returns tables; the recipe decides what to log.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from apex.data import Dataset, DatasetConfig, prepare_splits
from apex.eval import EvalResult, evaluate_embeddings
from apex.eval.config import EvalConfig
from apex.model import Encoder, ModelConfig, add_lora, load_encoder, save_adapter
from apex.tracking import JobRun, TrackingConfig, as_params, cell_hash, cell_label, flatten, git_state
from apex.tracking import reject_secrets_in_config
from apex.train import TrainConfig, build_examples, relevant_sets, train

log = logging.getLogger("apex.recipe")


@dataclass
class Summary:
    """What a run prints and returns: test rank@1 per training step (0 = zero-shot), with its context."""

    run_id: str
    cell: str
    seed: int
    corpus_size: int
    n_queries: int
    steps: dict[int, float] = field(default_factory=dict)  # step → stop fraction (0.0 = zero-shot)
    test: dict[int, dict[str, float]] = field(default_factory=dict)  # step → metrics
    val: dict[int, dict[str, float]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        lines = [
            f"apex run {self.run_id}  cell {self.cell}  seed {self.seed}",
            f"test split: {self.n_queries} queries against a corpus of {self.corpus_size} documents",
            f"{'step':>6} {'stop':>6} {'rank@1':>8} {'R@10':>7} {'MRR@10':>7} {'val rank@1':>11}",
        ]
        for step, fraction in self.steps.items():
            metrics = self.test[step]
            val = self.val.get(step, {}).get("rank_at_1")
            label = "zero-shot" if step == 0 else f"{fraction:.2f}"
            lines.append(
                f"{step:>6} {label:>9} {100 * metrics['rank_at_1']:7.2f}% {100 * metrics['recall_at_10']:6.2f}% "
                f"{metrics['mrr_at_10']:7.4f} {'' if val is None else f'{100 * val:10.2f}%'}"
            )
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        lines.append(f"wall time {self.wall_seconds:.0f} s; training {self.train_examples_per_second:.1f} examples/s")
        return "\n".join(lines)


def seed_everything(seed: int) -> None:
    """Seed every global RNG a library might use (LoRA init, dropout); data order has its own generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate(encoder: Encoder, split: Dataset, documents: pd.DataFrame, cfg: EvalConfig, progress: bool) -> EvalResult:
    """Embed a split's queries and documents (in the evaluation view) and rank every query against the corpus."""
    query_emb = encoder.encode(list(split.queries["text"]), "query", show_progress=progress, batch_size=cfg.batch_size)
    doc_emb = encoder.encode(list(documents["text"]), "document", show_progress=progress, batch_size=cfg.batch_size)
    return evaluate_embeddings(
        query_emb, doc_emb, split.queries, split.corpus, split.qrels, ks=cfg.ks, chunk_size=cfg.chunk_size
    )


def run(cfg: DictConfig, overrides: list[str] | None = None) -> Summary:
    started = time.perf_counter()
    # ---- setup: read every config section once, typed and validated, before any work
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = flatten(resolved)
    reject_secrets_in_config(flat)
    seed = int(cfg.seed)
    data_cfg = DatasetConfig.from_cfg(resolved["dataset"])
    model_cfg = ModelConfig.from_cfg(resolved["model"])
    train_cfg = TrainConfig.from_cfg(resolved["training"])
    eval_cfg = EvalConfig.from_cfg(resolved["eval"])
    tracking_cfg = TrackingConfig.from_cfg(resolved["tracking"])
    progress = bool(cfg.progress)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    seed_everything(seed)

    # ---- data: one split by document, fixed across training seeds
    splits = prepare_splits(data_cfg)
    train_split, val_split, test_split = splits["train"], splits["val"], splits["test"]
    train_docs = train_split.corpus  # the training view: plain text here

    cell = cell_hash(flat)
    label = cell_label(overrides or [])
    commit, dirty = git_state()
    tracker = JobRun(
        tracking_cfg,
        run_name=cfg.run_name or f"{label} seed={seed}",
        tags={
            "apex.kind": "job",
            "apex.cell": cell,
            "apex.cell_label": label,
            "apex.seed": str(seed),
            "apex.git_commit": commit,
            "apex.git_dirty": str(dirty).lower(),
            "apex.dataset_fingerprint": test_split.fingerprint()[:16],
        },
    )
    failed = True
    try:
        tracker.log_params(as_params(flat))
        tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
        for name, split in splits.items():
            tracker.log_metrics({f"{name}_documents": len(split.corpus), f"{name}_queries": len(split.queries)})

        # ---- model
        encoder = load_encoder(model_cfg)
        log.info("model %s on %s, bf16 autocast %s", model_cfg.source, encoder.device, encoder.use_bf16)

        # ---- examples: (query, positive, mined negatives)
        examples = build_examples(train_split.queries, train_docs, train_split.qrels)
        relevant = relevant_sets(train_split.qrels)

        summary = Summary(
            run_id=tracker.run_id,
            cell=label,
            seed=seed,
            corpus_size=len(test_split.corpus),
            n_queries=len(test_split.queries),
        )
        test_docs = test_split.corpus
        val_docs = val_split.corpus

        def checkpoint(step: int, fraction: float) -> None:
            """Evaluate at a stop point (step 0 = the base model) and log everything the report needs."""
            result = evaluate(encoder, test_split, test_docs, eval_cfg, progress)
            summary.steps[step] = fraction
            summary.test[step] = result.metrics
            tracker.log_metrics({**result.metrics, "stop_fraction": fraction}, step=step)
            tracker.log_table(result.per_query, f"per_query/step_{step:06d}.json")
            if eval_cfg.on_val and len(val_split.queries):
                val_result = evaluate(encoder, val_split, val_docs, eval_cfg, progress)
                summary.val[step] = val_result.metrics
                tracker.log_metrics({f"val_{k}": v for k, v in val_result.metrics.items()}, step=step)
            log.info("step %d (stop %.2f): test rank@1 %.4f", step, fraction, result.metrics["rank_at_1"])

        # ---- step 0: the zero-shot base model, on the very network we then train (LoRA's B starts at zero)
        encoder.model = add_lora(
            encoder.model,
            r=train_cfg.lora.r,
            alpha=train_cfg.lora.alpha,
            dropout=train_cfg.lora.dropout,
            target_modules=model_cfg.lora_target_modules,
            quantized=model_cfg.quantization != "none",
            gradient_checkpointing=model_cfg.gradient_checkpointing,
        )
        checkpoint(0, 0.0)

        # ---- train, evaluating and saving the adapter at every stop point
        adapter_root = Path(tempfile.mkdtemp(prefix="apex-adapters-"))

        def stop_point(step: int, fraction: float) -> None:
            checkpoint(step, fraction)
            save_adapter(encoder.model, adapter_root / f"step_{step:06d}")

        result = train(
            encoder,
            examples,
            relevant,
            train_cfg,
            seed=seed,
            on_stop_point=stop_point,
            on_loss=lambda step, loss: tracker.log_metrics({"train_loss": loss}, step=step),
            progress=progress,
        )
        summary.train_examples_per_second = result.examples_per_second

        # ---- clean up: adapters, summary
        if tracking_cfg.log_adapter:
            final = adapter_root / f"step_{result.total_steps:06d}"
            tracker.log_artifact(final, "adapter")
        summary.wall_seconds = time.perf_counter() - started
        tracker.log_metrics(
            {"wall_seconds": summary.wall_seconds, "train_examples_per_second": summary.train_examples_per_second}
        )
        tracker.log_json(
            {"steps": summary.steps, "test": summary.test, "val": summary.val, "extra": summary.extra},
            "summary.json",
        )
        failed = False
        return summary
    finally:
        tracker.end(failed=failed)


def summary_json(summary: Summary) -> str:
    return json.dumps(summary.__dict__, default=str, indent=2)
