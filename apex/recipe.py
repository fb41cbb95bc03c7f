"""The APEX-Embedding job as one readable recipe: data → ERMs → negatives → train → evaluate.

This is the only module that calls every stage and the only one that logs to MLflow. Each stage gets its typed
config section and tables, and returns tables; the recipe decides what to log.
"""

from __future__ import annotations

import dataclasses
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

from apex.data import Dataset, DatasetConfig, prepare_splits, splits_fingerprint
from apex.erm import (
    ErmConfig,
    build_maps,
    generate_queries,
    map_view_with_counts,
    size_reduction,
    write_reduction_histogram,
)
from apex.eval import EvalResult, evaluate_embeddings
from apex.eval.config import EvalConfig
from apex.model import Encoder, ModelConfig, add_lora, load_encoder, save_adapter
from apex.sampling import SamplerConfig, mine_negatives, write_outputs
from apex.tracking import (
    JobRun,
    TrackingConfig,
    as_params,
    cell_hash,
    cell_label,
    flatten,
    git_state,
    reject_secrets_in_config,
)
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


def erm_view(
    table: pd.DataFrame, id_column: str, cfg: ErmConfig, cache_dir: Path, progress: bool
) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    """The table with ``text`` replaced by rendered maps: (view, stats, failures). Empty/failed maps keep plain text.

    Works for documents (``doc_id``) and queries (``query_id``) alike: both are (id, text) tables to the ERM stage.
    """
    as_docs = table.rename(columns={id_column: "doc_id"})
    result = build_maps(as_docs[["doc_id", "text"]].rename(columns={"doc_id": "id"}), cfg, cache_dir, progress=progress)
    view, counts = map_view_with_counts(as_docs, result.maps)
    stats = {**result.stats, **{f"view_{k}": float(v) for k, v in counts.items()}}
    return view.rename(columns={"doc_id": id_column}), stats, result.failures


def with_llm_queries(split: Dataset, cfg: ErmConfig, cache_dir: Path, progress: bool) -> tuple[Dataset, dict]:
    """The split with one LLM-written query per document (``dataset.queries=llm``), cached like the maps.

    A document whose query failed stays in the corpus as a distractor; the count is returned and logged.
    """
    result = generate_queries(split.corpus, cfg, cache_dir, progress=progress)
    replaced = dataclasses.replace(split, queries=result.queries, qrels=result.qrels)
    replaced.validate()
    return replaced, result.stats


def run(cfg: DictConfig, overrides: list[str] | None = None, output_dir: str | None = None) -> Summary:
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
    erm_cfg = ErmConfig.from_cfg(resolved["erm"])
    sampler_cfg = SamplerConfig.from_cfg(resolved["sampler"])
    cache_dir = Path(cfg.cache_dir)
    out_dir = Path(output_dir or tempfile.mkdtemp(prefix="apex-run-"))
    progress = bool(cfg.progress)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    seed_everything(seed)

    # ---- data: one split by document, fixed across training seeds
    splits = prepare_splits(data_cfg)
    query_stats: dict[str, float] = {}
    if data_cfg.queries == "llm":  # the paper had GPT-4o write the queries: same LLM layer as the maps
        if not erm_cfg.is_llm:
            raise ValueError(
                f"dataset.queries=llm needs an LLM erm backend (gpt4o, openai_compatible), not {erm_cfg.name}"
            )
        for name in list(splits):
            splits[name], stats = with_llm_queries(splits[name], erm_cfg, cache_dir / "erm", progress)
            query_stats.update({f"llm_queries_{name}_{k}": v for k, v in stats.items()})
    train_split, val_split, test_split = splits["train"], splits["val"], splits["test"]

    # ---- ERMs: the training view of the documents (and, if asked, of the queries). Runs before the model loads,
    # so a missing API key or a dead LLM server fails the run at once.
    train_docs, train_query_texts = train_split.corpus, None
    test_docs, val_docs = test_split.corpus, val_split.corpus
    erm_stats: dict[str, float] = {}
    erm_failures: list[pd.DataFrame] = []
    if erm_cfg.name != "none":
        erm_cache = cache_dir / "erm"
        train_docs, erm_stats, failures = erm_view(train_split.corpus, "doc_id", erm_cfg, erm_cache, progress)
        erm_failures.append(failures)
        if erm_cfg.apply_to == "documents_and_queries":
            train_query_texts, query_stats, failures = erm_view(
                train_split.queries, "query_id", erm_cfg, erm_cache, progress
            )
            erm_stats.update({f"query_{k}": v for k, v in query_stats.items()})
            erm_failures.append(failures)
        if eval_cfg.view == "erm":
            test_docs, _, failures = erm_view(test_split.corpus, "doc_id", erm_cfg, erm_cache, progress)
            val_docs, _, more = erm_view(val_split.corpus, "doc_id", erm_cfg, erm_cache, progress)
            erm_failures += [failures, more]
    elif eval_cfg.view == "erm":
        raise ValueError("eval.view=erm needs an ERM backend (erm=spacy, gpt4o, ...), got erm=none")

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
            "apex.dataset_fingerprint": splits_fingerprint(splits)[:16],
        },
    )
    failed = True
    try:
        tracker.log_params(as_params(flat))
        tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
        for name, split in splits.items():
            tracker.log_metrics({f"{name}_documents": len(split.corpus), f"{name}_queries": len(split.queries)})
        if query_stats:
            tracker.log_metrics(query_stats)

        summary = Summary(
            run_id=tracker.run_id,
            cell=label,
            seed=seed,
            corpus_size=len(test_split.corpus),
            n_queries=len(test_split.queries),
        )

        # ---- model
        encoder = load_encoder(model_cfg)
        log.info("model %s on %s, bf16 autocast %s", model_cfg.source, encoder.device, encoder.use_bf16)

        if erm_cfg.name != "none":
            per_doc, reduction = size_reduction(
                list(train_split.corpus["text"]), list(train_docs["text"]), encoder.tokenizer
            )
            tracker.log_metrics({**{f"erm_{k}": v for k, v in erm_stats.items()}, **reduction})
            per_doc.insert(0, "doc_id", train_split.corpus["doc_id"].to_numpy())
            tracker.log_table(per_doc, "erm/size_per_document.json")
            tracker.log_artifact(write_reduction_histogram(per_doc, out_dir / "erm_size_reduction.png"), "erm")
            failures = pd.concat(erm_failures, ignore_index=True)
            if len(failures):
                tracker.log_table(failures, "erm/failures.json")
            mean, median = reduction["token_reduction_mean_pct"], reduction["token_reduction_median_pct"]
            summary.extra["ERM input-size reduction (tokens)"] = (
                f"mean {mean:.2f}%, median {median:.2f}% over {len(per_doc)} training documents (paper: 37.71%)"
            )

        # ---- negatives: mined once from the frozen base model, in the training view
        mining = mine_negatives(
            train_split.queries if train_query_texts is None else train_query_texts,
            train_docs,
            train_split.qrels,
            encoder if sampler_cfg.name != "in_batch" else None,
            sampler_cfg,
            cache_dir=cache_dir / "base_embeddings",
            view="plain" if erm_cfg.name == "none" else f"erm:{erm_cfg.name}:{erm_cfg.apply_to}",
            seed=seed,
            progress=progress,
        )
        if sampler_cfg.name != "in_batch":
            tracker.set_tags({"apex.base_embedding_cache": "hit" if mining.cache_hit else "miss"})
            tracker.log_metrics(
                {"negatives": len(mining.negatives), "base_embedding_cache_hit": float(mining.cache_hit)}
            )
            for path in write_outputs(mining, out_dir / "sampler"):
                tracker.log_artifact(path, "sampler")
            summary.extra["negatives"] = (
                f"{len(mining.negatives)} mined ({sampler_cfg.name}); base embeddings cache "
                f"{'hit' if mining.cache_hit else 'miss'}"
            )

        # ---- examples: (query, positive, mined negatives)
        examples = build_examples(
            train_split.queries, train_docs, train_split.qrels, mining.negatives, query_texts=train_query_texts
        )
        relevant = relevant_sets(train_split.qrels)

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
        adapter_root = out_dir / "adapters"  # one adapter per stop point, kept with the run's Hydra outputs

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
            final = adapter_root / f"step_{max(result.stop_steps):06d}"  # the last stop point's adapter
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
