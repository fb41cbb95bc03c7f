"""`StopPoints`: the recipe's stop-point callback: evaluate (step 0 = the base model), log, save the adapter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apex.data import Dataset
from apex.eval.stop_point import EvalTarget, StopPointEval, evaluate_stop_point
from apex.eval.trec import write_qrels, write_run
from apex.model import Encoder, save_adapter
from apex.model.loading import public_base
from apex.pipeline.summary import Summary
from apex.tracking import JobRun, names
from apex.tracking.view import log_stop_point_adapter

if TYPE_CHECKING:
    from apex.pipeline.job import Data, Job, Views

log = logging.getLogger("apex.pipeline.recipe")


@dataclass
class StopPoints:
    """Evaluates the encoder at a stop point (step 0 = the base model), logs what the report needs, saves adapters."""

    job: Job
    data: Data
    views: Views
    encoder: Encoder
    tracker: JobRun
    summary: Summary
    step0_seconds: float | None = None

    def evaluate(self, step: int, fraction: float) -> None:
        """Test (and validation) at this stop point; step 0 comes from the step-0 cache when a job stored it."""
        if step == 0:
            log_qrels(self.tracker, self.data.splits, self.job.out_dir)
        targets = [EvalTarget("test", self.data.splits["test"], self.views.test_docs)]
        if self.job.cfg.eval.on_val and len(self.data.splits["val"].queries):
            targets.append(EvalTarget("val", self.data.splits["val"], self.views.val_docs))
        eval_cfg = self.job.cfg.eval
        encoder = self.encoder.for_evaluation(merge_lora=eval_cfg.merge_lora, fp32=not eval_cfg.autocast)
        evaluated = evaluate_stop_point(
            encoder,
            targets,
            eval_cfg,
            step=step,
            cache_dir=self.job.cache_dir / "step0_eval",
            progress=self.job.progress,
        )
        if step == 0:  # what one stop point's evaluation costs, also when step 0 came from the cache (ETA)
            self.step0_seconds = evaluated.compute_seconds()
        self.summary.steps[step] = fraction
        self.summary.test[step] = evaluated.results["test"].metrics
        if "val" in evaluated.results:
            self.summary.val[step] = evaluated.results["val"].metrics
        self.tracker.log_metrics({names.STOP_FRACTION: fraction}, step=step)
        log_stop_point(self.tracker, evaluated, step, self.job.out_dir)
        if step == 0 and evaluated.cache_hits:
            hit = all(evaluated.cache_hits.values())
            self.summary.extra["step-0 evaluation"] = "cache hit" if hit else "cache miss (computed and stored)"
        metrics = self.summary.test[step]
        ndcg = metrics.get("ndcg_at_10", float("nan"))
        log.info("step %d (stop %.2f): test nDCG@10 %.4f, rank@1 %.4f", step, fraction, ndcg, metrics["rank_at_1"])

    def evaluate_and_save(self, step: int, fraction: float) -> None:
        self.evaluate(step, fraction)
        base_id = public_base(self.job.cfg.model.source)[0]  # not a local path: the adapter travels
        saved = save_adapter(self.encoder.model, self.adapter_dir(step), base_id)
        if self.job.cfg.tracking.log_adapter:  # every stop point's, so any stop the report picks can be exported
            log_stop_point_adapter(self.tracker, saved, step)

    def adapter_dir(self, step: int) -> Path:
        return self.job.out_dir / "adapters" / f"step_{step:06d}"  # kept with the run's Hydra outputs


def log_stop_point(tracker: JobRun, evaluated: StopPointEval, step: int, out_dir: Path) -> None:
    """Log one stop point: metrics (val_ prefixed for validation), the test per-query table, and for every split a
    TREC run file (top eval.run_depth per query) beside the qrels, so ranx / trec_eval / ir_measures can re-score
    it. Step 0 also says whether it came from the step-0 cache."""
    for name, result in evaluated.results.items():
        prefix = "" if name == "test" else f"{name}_"
        tracker.log_metrics({f"{prefix}{k}": v for k, v in result.metrics.items()}, step=step)
        if name == "test":
            tracker.log_table(result.per_query, names.per_query_table(step))
        if result.run is not None:
            folder = f"trec/step_{step:06d}"
            tracker.log_artifact(
                write_run(result.run, out_dir / folder / f"{name}.run", tag=f"apex-step{step}"), folder
            )
    if step == 0 and evaluated.cache_hits:
        hit = all(evaluated.cache_hits.values())
        # A tag, not a metric: whether step 0 came from the cache says nothing about the model.
        tracker.set_tags({names.STEP0_CACHE: "hit" if hit else "miss"})


def log_qrels(tracker: JobRun, splits: dict[str, Dataset], out_dir: Path) -> None:
    """The qrels of the evaluated splits as TREC files (trec/qrels/<split>.qrels): the runs' answer keys."""
    for name in ("val", "test"):
        if len(splits[name].qrels):
            path = write_qrels(splits[name].qrels, out_dir / "trec" / "qrels" / f"{name}.qrels")
            tracker.log_artifact(path, "trec/qrels")
