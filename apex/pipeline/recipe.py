"""The APEX-Embedding job as one readable recipe: configs → data → negatives → views → model → train → finish.

This is the only module that calls every stage in order. Stages return values and never import MLflow; the recipe
logs them (through `apex.tracking.JobRun`), and so does `apex.pipeline.stop_points`, to which it hands the
evaluations during training. `run` is the table of contents; each stage below is a function with typed inputs and
outputs. The data stages' inputs and builds are owned by `apex.store.stages`, which the DVC stage commands call too.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from apex.core.configs import cell_of, load_configs
from apex.core.preflight import check_tracking
from apex.core.secrets import reject_secrets_in_config
from apex.data import prepare_splits
from apex.erm import generate_queries, size_reduction, write_reduction_histogram
from apex.erm.prompts import MAP_TASK
from apex.erm.registry import backend_of
from apex.erm.runner import preflight_if_unanswered
from apex.erm.view import map_quality
from apex.model import Encoder, LazyEncoder, add_lora
from apex.pipeline.job import Data, Job, Mined, Views
from apex.pipeline.progress import set_progress_bars, timed_stage
from apex.pipeline.stop_points import StopPoints
from apex.pipeline.summary import Summary
from apex.sampling.mining import empty_negatives
from apex.sampling.registry import SAMPLERS
from apex.store.outputs import mapped_view, negatives_files, read_maps, read_negatives
from apex.store.stages import maps_work, negatives_work, prepared_work
from apex.store.store import DataStore
from apex.tracking import JobRun, as_params, cell_label, flatten, git_state, names
from apex.tracking.view import arm_of, job_note, job_run_name
from apex.train import build_examples, relevant_sets, train
from apex.train.loop import TrainResult

log = logging.getLogger("apex.pipeline.recipe")


def run(cfg: DictConfig, overrides: list[str] | None = None, output_dir: str | None = None) -> Summary:
    """One job: returns its Summary (the objective for Hydra is `summary.objective()`)."""
    started = time.perf_counter()
    job = configs(cfg, overrides, output_dir)
    data = load_data(job)
    model = LazyEncoder(job.cfg.model)  # loaded when first needed: to mine, else to train
    mined = negatives(job, data, model)  # in the plain view: they say which documents need maps
    views = build_views(job, data, mined)  # maps of training positives and mined negatives only
    tracker = open_tracking(job, data)
    with tracker.closing():  # FINISHED only after complete(); FAILED or KILLED with the reason otherwise
        log_inputs(tracker, job, data, views)
        summary = new_summary(tracker, job, data, views)
        log_negatives(mined, tracker, summary)
        encoder = load_model(job, data, views, model, tracker, summary)
        result = evaluate_and_train(job, data, views, mined.table, encoder, tracker, summary)
        finish(result, tracker, summary, started)
        if job.cfg.tracking.export_model:
            export_at_end(tracker, summary, job.out_dir / "export")
        tracker.complete()
        return summary


def configs(cfg: DictConfig, overrides: list[str] | None, output_dir: str | None) -> Job:
    """Read every config section once, typed and validated, before any work; seed every RNG; set threads."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = flatten(resolved)
    reject_secrets_in_config(flat, literal=flatten(OmegaConf.to_container(cfg, resolve=False)))
    typed = load_configs(cfg)
    tracking = typed.tracking  # checked again here for callers of run() that bypass apex.core.cli.job
    check_tracking(tracking.uri, tracking.experiment, tracking.artifact_root)
    set_progress_bars(typed.job.progress)  # the libraries' bars too ("Loading weights", uploads)
    out_dir = Path(output_dir or tempfile.mkdtemp(prefix="apex-run-"))
    # store.enabled=false: build everything into this run's own folder (nothing shared, nothing pinned).
    store_root = typed.paths.data if typed.store.enabled else out_dir / "data"
    job = Job(
        cfg=typed,
        params=flat,
        resolved_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        cell=cell_of(flat, typed),
        label=cell_label(overrides or []),
        out_dir=out_dir,
        store=DataStore(store_root, typed.store, typed.paths.dvc_lock),
        overrides=tuple(overrides or []),
    )
    if typed.job.torch_threads:
        torch.set_num_threads(typed.job.torch_threads)
    seed_everything(typed.job.seed)
    return job


def seed_everything(seed: int) -> None:
    """Seed every global RNG a library might use (LoRA init, dropout); data order has its own generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@timed_stage("data")
def load_data(job: Job) -> Data:
    """The seeded split; with dataset.queries=llm, one LLM-written query per document (the paper used GPT-4o)."""
    data_cfg, erm_cfg = job.cfg.dataset, job.cfg.erm
    data = Data(splits=prepare_splits(data_cfg))
    if data_cfg.queries == "llm":  # an LLM backend: checked with the configs (RunConfigs.validate)
        for name, split in list(data.splits.items()):
            result = generate_queries(split.corpus, erm_cfg, job.cache_dir / "erm", progress=job.progress)
            # A document whose query failed stays in the corpus as a distractor; the count is logged.
            data.splits[name] = dataclasses.replace(split, queries=result.queries, qrels=result.qrels)
            data.splits[name].validate()
            data.query_stats.update({f"llm_queries_{name}_{k}": v for k, v in result.stats.items()})
    work = prepared_work(data.splits, data_cfg)
    data.prepared = job.store.get_or_build(work.stage, work.inputs, work.build)
    return data


@timed_stage("negatives")
def negatives(job: Job, data: Data, model: LazyEncoder) -> Mined:
    """Negatives mined once from the frozen base model in the plain view (the documents as they are), before the
    maps, which only the documents training reads get: from the store when pinned or stored, else mined now by the
    function the DVC stage calls (none for in_batch). Model-aware mining ranks the whole training corpus (with
    dataset.split=given, the whole corpus) and never takes a labelled positive of the query."""
    sampler_cfg, train = job.cfg.sampler, data.train
    if not SAMPLERS.get(sampler_cfg.name).mines:  # in_batch: the batch's other positives are the negatives
        return Mined(empty_negatives(), sampler_cfg.name)
    mined = Mined(pd.DataFrame(), sampler_cfg.name)

    def encoder() -> Encoder:
        # The maps come after mining: a missing key or a dead LLM server must fail now, not after the encoding.
        preflight_if_unanswered(list(train.corpus["text"]), MAP_TASK, job.cfg.erm, job.cache_dir / "erm")
        return model.get()

    work = negatives_work(data.splits, job.cfg.model, sampler_cfg, job.cfg.job.seed, encoder,
                          job.cache_dir / "base_embeddings", job.progress)  # fmt: skip
    mined.located = job.store.get_or_build(work.stage, work.inputs, lambda out: mined.volatile.update(work.build(out)))
    mined.table, _ = read_negatives(mined.located.path)
    return mined


@timed_stage("views")
def build_views(job: Job, data: Data, mined: Mined) -> Views:
    """The training view of the documents training reads (training positives and mined negatives, apex.erm.needed)
    and, if asked, of the queries; the evaluation view of val/test (whole corpora: evaluation reads every document).

    Maps come from the store: pinned by `dvc repro`, stored by an earlier run, or built now by `write_maps`.
    """
    erm_cfg, eval_cfg = job.cfg.erm, job.cfg.eval
    splits, train = data.splits, data.train
    views = Views(train_docs=train.corpus, val_docs=splits["val"].corpus, test_docs=splits["test"].corpus)
    if backend_of(erm_cfg).answer is None:  # erm=none: plain text (eval.view=erm is refused with the configs)
        return views
    work, needed = maps_work(splits, mined.table, erm_cfg, eval_cfg.view, job.cache_dir / "erm", job.progress)
    views.needed = needed
    log.info("%s", needed.line())
    built: dict[str, dict[str, float]] = {}  # filled only when the maps are built now: timings, cache hits
    views.maps = job.store.get_or_build(work.stage, work.inputs, lambda out: built.update(work.build(out)))
    folder = views.maps.path
    read = train.corpus[train.corpus["doc_id"].isin(set(needed.ids))].reset_index(drop=True)
    views.train_docs, counts = mapped_view(read, "doc_id", read_maps(folder, "train"))
    views.stats = {**built.get("train", {}), **{f"view_{k}": float(v) for k, v in counts.items()}}
    views.failures.append(read_maps(folder, "train", "failures"))
    if erm_cfg.apply_to == "documents_and_queries":
        query_maps = read_maps(folder, "train", "query_maps")
        views.train_queries, counts = mapped_view(train.queries, "query_id", query_maps)
        views.stats |= {f"query_view_{k}": float(v) for k, v in counts.items()}
    if eval_cfg.view == "erm":
        views.test_docs, _ = mapped_view(splits["test"].corpus, "doc_id", read_maps(folder, "test"))
        views.val_docs, _ = mapped_view(splits["val"].corpus, "doc_id", read_maps(folder, "val"))
        views.failures += [read_maps(folder, split, "failures") for split in ("val", "test")]
    return views


def open_tracking(job: Job, data: Data) -> JobRun:
    """Open the MLflow run (a sweep's child when there is one), tagged with what identifies the job."""
    seed = job.cfg.job.seed
    commit, dirty = git_state()
    return JobRun(
        job.cfg.tracking,
        run_name=job.cfg.job.run_name or job_run_name(job.overrides, seed, job.cfg.tracking.uri),
        tags={
            names.KIND: names.KIND_JOB,
            names.CELL: job.cell,
            names.CELL_LABEL: job.label,
            names.SEED: str(seed),
            names.GIT_COMMIT: commit,
            names.GIT_DIRTY: str(dirty).lower(),
            names.DATASET_FINGERPRINT: data.fingerprint[:16],
            names.TEST_FINGERPRINT: data.splits["test"].fingerprint()[:16],
        },
    )


def log_inputs(tracker: JobRun, job: Job, data: Data, views: Views) -> None:
    """The config, the data and its provenance (inside the run's `closing`: a failure here ends it FAILED)."""
    for located in (data.prepared, views.maps):
        if located is not None:
            tracker.set_tags(located.provenance())
    lock = Path(job.cfg.paths.dvc_lock)
    if lock.is_file():
        tracker.log_artifact(lock, "provenance")
    tracker.log_params(as_params(job.params) | {names.ARM_PARAM: arm_of(job.cfg.erm.name, job.cfg.sampler.name)})
    tracker.log_text(job.resolved_yaml, "config/resolved.yaml")
    for name, split in data.splits.items():
        tracker.log_metrics({f"{name}_documents": len(split.corpus), f"{name}_queries": len(split.queries)})
    if data.query_stats:
        tracker.log_metrics(data.query_stats)


def new_summary(tracker: JobRun, job: Job, data: Data, views: Views) -> Summary:
    test = data.splits["test"]
    summary = Summary(
        run_id=tracker.run_id,
        cell_label=job.label,
        seed=job.cfg.job.seed,
        corpus_size=len(test.corpus),
        n_queries=len(test.queries),
        stop=job.cfg.report.stop,
    )
    maps = "none" if views.maps is None else views.maps.status
    summary.extra["data store"] = f"splits {data.prepared.status}, maps {maps}"  # pinned | stored | built
    return summary


def log_negatives(mined: Mined, tracker: JobRun, summary: Summary) -> None:
    """Where the negatives came from (pinned, stored, mined now), their count, stats and histogram."""
    if mined.located is None:  # in_batch: nothing mined
        return
    located, volatile = mined.located, mined.volatile
    tracker.set_tags(located.provenance())
    tracker.log_metrics({names.NEGATIVES: len(mined.table)})
    if "cache_hit" in volatile:
        tracker.set_tags({names.BASE_EMBEDDING_CACHE: "hit" if volatile["cache_hit"] else "miss"})
        tracker.log_metrics({names.BASE_EMBEDDING_CACHE_HIT: float(volatile["cache_hit"])})
    for path in negatives_files(located.path):
        tracker.log_artifact(path, "sampler")
    cache = f"; base embeddings cache {'hit' if volatile['cache_hit'] else 'miss'}" if "cache_hit" in volatile else ""
    summary.extra["negatives"] = f"{len(mined.table)} ({mined.sampler}), {located.status}{cache}"
    summary.extra["data store"] += f", negatives {located.status}"


@timed_stage("model")
def load_model(job: Job, data: Data, views: Views, model: LazyEncoder, tracker: JobRun, summary: Summary) -> Encoder:
    """The base encoder; with ERMs, log how much shorter the maps are in its tokens (the paper's 37.71%), over the
    documents actually mapped (training positives and mined negatives)."""
    encoder = model.get()
    log.info("model %s on %s, bf16 autocast %s", model.cfg.source, encoder.device, encoder.use_bf16)
    if views.needed is None:  # erm=none
        return encoder
    plain = data.train.corpus.set_index("doc_id").loc[views.train_docs["doc_id"], "text"]
    per_doc, reduction = size_reduction(list(plain), list(views.train_docs["text"]), encoder.tokenizer)
    erm_stats = {f"erm_{k}": v for k, v in views.stats.items()}
    quality_line, quality = map_quality(views.stats)
    tracker.log_metrics({**erm_stats, **quality, **reduction, **views.needed.metrics()})
    per_doc.insert(0, "doc_id", views.train_docs["doc_id"].to_numpy())
    tracker.log_table(per_doc, "erm/size_per_document.json")
    tracker.log_artifact(write_reduction_histogram(per_doc, job.out_dir / "erm_size_reduction.png"), "erm")
    failures = pd.concat(views.failures, ignore_index=True)
    if len(failures):
        tracker.log_table(failures, "erm/failures.json")
    mean, median = reduction["token_reduction_mean_pct"], reduction["token_reduction_median_pct"]
    summary.extra["maps"] = views.needed.line().removeprefix("maps: ")
    summary.extra["ERM maps"] = quality_line
    summary.extra["ERM input-size reduction (tokens)"] = (
        f"mean {mean:.2f}%, median {median:.2f}% over the {len(per_doc)} mapped training documents (paper: 37.71%)"
    )
    return encoder


@timed_stage("train+evaluate")
def evaluate_and_train(
    job: Job,
    data: Data,
    views: Views,
    mined: pd.DataFrame,
    encoder: Encoder,
    tracker: JobRun,
    summary: Summary,
) -> TrainResult:
    """Step 0 on the very network we then train (LoRA's B starts at zero), then train with a stop-point callback."""
    model_cfg, train_cfg = job.cfg.model, job.cfg.training
    split = data.train
    examples = build_examples(split.queries, views.train_docs, split.qrels, mined, query_texts=views.train_queries)
    encoder.model = add_lora(
        encoder.model,
        r=train_cfg.lora.r,
        alpha=train_cfg.lora.alpha,
        dropout=train_cfg.lora.dropout,
        target_modules=model_cfg.lora_target_modules,
        quantized=model_cfg.quantization != "none",
        gradient_checkpointing=model_cfg.gradient_checkpointing,
    )
    stop_points = StopPoints(job, data, views, encoder, tracker, summary)
    zero_shot_started = time.perf_counter()
    stop_points.evaluate(0, 0.0)
    result = train(
        encoder,
        examples,
        relevant_sets(split.qrels),
        train_cfg,
        seed=job.cfg.job.seed,
        on_stop_point=stop_points.evaluate_and_save,
        on_loss=lambda step, loss: tracker.log_metrics({names.TRAIN_LOSS: loss}, step=step),
        progress=job.progress,
        # The remaining-time estimate counts evaluations: step 0's computing time (kept by the step-0 cache).
        eval_seconds=stop_points.step0_seconds or time.perf_counter() - zero_shot_started,
    )
    return result


def finish(result: TrainResult, tracker: JobRun, summary: Summary, started: float) -> None:
    """Throughput, wall time, the chosen stop point and the objective; summary.json."""
    summary.train_examples_per_second = result.examples_per_second
    summary.wall_seconds = time.perf_counter() - started
    metrics = {names.WALL_SECONDS: summary.wall_seconds, "train_examples_per_second": summary.train_examples_per_second}
    chosen = summary.chosen_step()
    tracker.log_metrics(metrics | summary.chosen_metrics())  # the chosen stop's val and test figures, named so
    if ui := tracker.ui_hint():
        summary.extra["MLflow UI"] = ui  # model-training mode on the saved view (apex.tracking.saved_view)
    tracker.log_json(
        {"steps": summary.steps, "test": summary.test, "val": summary.val, "extra": summary.extra, "chosen": chosen},
        "summary.json",
    )
    note = job_note(summary.cell_label, summary.seed, summary.corpus_size, summary.n_queries, summary.steps,
                    summary.test, summary.val)  # fmt: skip
    tracker.set_tags({names.NOTE: note})  # the run's description in the MLflow UI


def export_at_end(tracker: JobRun, summary: Summary, out_dir: Path) -> None:
    """tracking.export_model: the chosen stop point (else the last) as a merged model, logged as an MLflow model."""
    from mlflow import MlflowClient

    from apex.export import export_run
    from apex.export.mlflow_model import log_export

    client = MlflowClient()
    step = summary.chosen_step() or max(summary.steps)
    result = export_run(client, tracker.run_id, step, out_dir, verify=False)  # the probes still check the merge
    summary.extra["exported model"] = f"step {step} to {out_dir}; MLflow model {log_export(client, result)}"
