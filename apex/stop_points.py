"""`StopPoints`: the recipe's stop-point callback: evaluate (step 0 = the base model), log, save the adapter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from apex.data import Dataset
from apex.eval import evaluate_embeddings
from apex.model import Encoder, save_adapter
from apex.summary import Summary
from apex.tracking import JobRun

if TYPE_CHECKING:
    from apex.recipe import Data, Job, Views

log = logging.getLogger("apex.recipe")


@dataclass
class StopPoints:
    """Evaluates the encoder at a stop point (step 0 = the base model), logs what the report needs, saves adapters."""

    job: Job
    data: Data
    views: Views
    encoder: Encoder
    tracker: JobRun
    summary: Summary

    def evaluate(self, step: int, fraction: float) -> None:
        eval_cfg = self.job.cfg.eval
        test, val = self.data.splits["test"], self.data.splits["val"]
        result = self._score(test, self.views.test_docs)
        self.summary.steps[step] = fraction
        self.summary.test[step] = result.metrics
        self.tracker.log_metrics({**result.metrics, "stop_fraction": fraction}, step=step)
        self.tracker.log_table(result.per_query, f"per_query/step_{step:06d}.json")
        if eval_cfg.on_val and len(val.queries):
            val_result = self._score(val, self.views.val_docs)
            self.summary.val[step] = val_result.metrics
            self.tracker.log_metrics({f"val_{k}": v for k, v in val_result.metrics.items()}, step=step)
        log.info("step %d (stop %.2f): test rank@1 %.4f", step, fraction, result.metrics["rank_at_1"])

    def evaluate_and_save(self, step: int, fraction: float) -> None:
        self.evaluate(step, fraction)
        save_adapter(self.encoder.model, self.adapter_dir(step))

    def adapter_dir(self, step: int) -> Path:
        return self.job.out_dir / "adapters" / f"step_{step:06d}"  # kept with the run's Hydra outputs

    def _score(self, split: Dataset, documents: pd.DataFrame) -> Any:
        """Embed a split's queries and documents (in the evaluation view); rank every query against the corpus."""
        cfg, progress = self.job.cfg.eval, self.job.progress
        encode = self.encoder.encode
        query_emb = encode(list(split.queries["text"]), "query", show_progress=progress, batch_size=cfg.batch_size)
        doc_emb = encode(list(documents["text"]), "document", show_progress=progress, batch_size=cfg.batch_size)
        return evaluate_embeddings(
            query_emb, doc_emb, split.queries, split.corpus, split.qrels, ks=cfg.ks, chunk_size=cfg.chunk_size
        )
