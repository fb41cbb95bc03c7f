"""What a user sees when they open MLflow: the experiment's kind, run names, run descriptions, stop-point adapters.

- The experiment is tagged as model training (``mlflow.experimentKind``) and carries a saved view (runs sorted
  by rank@1, rank@1 charted first); MLflow 3.17's UI takes the mode from the link (apex.tracking.saved_view).
- Sweep parents are named ``<preset>-<MM-DD HH:MM>``; jobs ``<sweep or preset> <swept overrides> s<seed>``, e.g.
  ``paper_sweep arm=apex lr=0.001 r=4 s2``: short, distinct, and readable in the UI's truncated name column.
- Each job gets a Markdown description (``mlflow.note.content``) with its cell, stop points and test metrics.
- The adapter of every stop point is logged under ``adapters/step_NNNNNN/``, so whichever stop point the report
  chooses can be exported (``python -m apex.export RUN_ID --step N``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from apex.tracking import names
from apex.tracking.mlflow_run import PARENT_RUN_ENV
from apex.tracking.params import _in_cell
from apex.tracking.saved_view import HEADLINE_VIEW, save_headline_view

if TYPE_CHECKING:
    from apex.tracking.mlflow_run import JobRun

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's "machine learning" kind (vs "genai_development")
NOTE_TAG = names.NOTE  # the run's (and experiment's) description in the UI
SWEEP_KEYS_TAG = names.SWEEP_KEYS  # on a sweep parent: the config keys its jobs differ in, comma-separated
SWEEP_NAME_TAG = names.SWEEP_NAME
ADAPTERS_ARTIFACT = "adapters"
_TIMESTAMP_DIR = re.compile(r"^\d{4}-(\d{2})-(\d{2})_(\d{2})-(\d{2})-\d{2}$")


def mark_model_training(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as model training unless someone already chose its kind, and save apex's headline view
    (MLflow 3.17's UI reads the mode from the link, not the tag: apex.tracking.saved_view says why)."""
    experiment = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if NOTE_TAG not in experiment.tags:
        client.set_experiment_tag(
            experiment_id,
            NOTE_TAG,
            "apex runs: one job per (cell, seed); a sweep is a parent run with one child per job. Chart "
            "`rank_at_1` (step = training step, 0 = zero-shot). `python -m apex.report` compares the cells; "
            "`python -m apex.export RUN_ID --step N` exports a stop point as a sentence-transformers model. "
            f"Saved view `{HEADLINE_VIEW}`: runs sorted by rank@1, rank@1 charted first; open the experiment with "
            f"`?workflowType=machine_learning&viewStateShareKey={HEADLINE_VIEW}` (model-training mode).",
        )
    save_headline_view(client, experiment_id)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def preset_name(overrides: Iterable[str]) -> str | None:
    """The ``experiment=...`` preset named on the command line, if any."""
    for override in overrides:
        if _key(override) == "experiment":
            return override.split("=", 1)[1]
    return None


def swept_keys(task_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None) -> list[str]:
    """Config keys a multirun varies: sweep overrides on the command line (``a=1,2``, ``range(...)``) and the
    sweeper's ``params`` (from a preset such as ``paper_sweep``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    keys += [str(k) for k in (sweeper_params or {})]
    return sorted(set(keys))


def sweep_run_name(task_overrides: Sequence[str], sweep_dir: str) -> str:
    """``paper_sweep-12-01 14:52``: the preset (or ``sweep``) and when it started, read from Hydra's sweep dir."""
    base = os.path.basename(os.path.normpath(sweep_dir))
    match = _TIMESTAMP_DIR.match(base)
    when = f"{match[1]}-{match[2]} {match[3]}:{match[4]}" if match else base
    return f"{preset_name(task_overrides) or 'sweep'}-{when}"


def _short(overrides: list[str]) -> list[str]:
    """``training.lora.r=4`` → ``r=4`` unless two keys would then read the same."""
    lasts = [_key(o).split(".")[-1] for o in overrides]
    return [
        f"{last}={o.split('=', 1)[1]}" if lasts.count(last) == 1 else o
        for o, last in zip(overrides, lasts, strict=True)
    ]


def job_run_name(overrides: Sequence[str], seed: int, tracking_uri: str) -> str:
    """A job's run name: the sweep's (or preset's) name, the overrides that set it apart, and the seed.

    In a sweep, only the swept keys are shown (the parent's ``apex.sweep_keys`` tag); outside one, every
    override that changes the cell except the preset itself.
    """
    kept = [o for o in overrides if _in_cell(_key(o)) and _key(o) != "experiment"]
    head = preset_name(overrides) or "run"
    parent_run_id = os.environ.get(PARENT_RUN_ENV)
    if parent_run_id:
        try:
            parent = MlflowClient(tracking_uri=tracking_uri).get_run(parent_run_id)
            keys = set(filter(None, parent.data.tags.get(SWEEP_KEYS_TAG, "").split(",")))
            head = parent.data.tags.get(SWEEP_NAME_TAG) or head
            kept = [o for o in kept if _key(o) in keys] if keys else kept
        except MlflowException:
            pass  # the parent is unreadable: fall back to the job's own overrides
    return " ".join([head, *_short(kept), f"s{seed}"])  # in command-line order


def sweep_parent_tags(task_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags of a sweep parent that its jobs read to name themselves."""
    return {
        SWEEP_KEYS_TAG: ",".join(k for k in swept_keys(task_overrides, sweeper_params) if k != "seed"),
        SWEEP_NAME_TAG: preset_name(task_overrides) or "sweep",
    }


def name_sweep_parent(
    client: MlflowClient, run_id: str, task_overrides: Sequence[str], sweep_dir: str, sweeper_params: Any
) -> None:
    """Give a new sweep parent its short name and the tags its jobs read to name themselves."""
    client.set_tag(run_id, names.RUN_NAME, sweep_run_name(task_overrides, sweep_dir))
    for key, value in sweep_parent_tags(task_overrides, sweeper_params).items():
        client.set_tag(run_id, key, value)


def arm_of(erm: str, sampler: str) -> str:
    """The `arm` param: `plain` (plain text, in-batch negatives), `apex` (maps and model-aware negatives: the paper's
    recipe, whichever ERM backend) or `erm=<name> sampler=<name>` for any other combination (an ablation)."""
    if erm == "none" and sampler == "in_batch":
        return "plain"
    if erm != "none" and sampler == "model_aware":
        return "apex"
    return f"erm={erm} sampler={sampler}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def job_note(
    cell_label: str,
    seed: int,
    corpus_size: int,
    n_queries: int,
    steps: Mapping[int, float],
    test: Mapping[int, Mapping[str, float]],
    val: Mapping[int, Mapping[str, float]],
) -> str:
    """Markdown description of a finished job: its cell, seed, and one row per stop point."""
    lines = [
        f"**cell** `{cell_label}` · **seed** {seed} · test split: {n_queries} queries against {corpus_size} documents",
        "",
        "| step | stop | rank@1 | recall@10 | MRR@10 | val rank@1 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for step, fraction in steps.items():
        metrics, val_rank = test.get(step, {}), val.get(step, {}).get("rank_at_1")
        stop = "zero-shot" if step == 0 else f"{fraction:.2f}"
        lines.append(
            f"| {step} | {stop} | {_pct(metrics.get('rank_at_1'))} | {_pct(metrics.get('recall_at_10'))} | "
            f"{metrics.get('mrr_at_10', float('nan')):.4f} | {_pct(val_rank)} |"
        )
    lines += ["", f"Adapters of every stop point: `{ADAPTERS_ARTIFACT}/step_NNNNNN/` (export: `python -m apex.export "
              "<run id> --step N`)."]  # fmt: skip
    return "\n".join(lines)


def log_stop_point_adapter(tracker: JobRun, directory: Path, step: int) -> None:
    """Log one stop point's adapter (a few MB) under ``adapters/step_NNNNNN``."""
    tracker.log_artifact(directory, f"{ADAPTERS_ARTIFACT}/step_{step:06d}")


def set_run_description(client: MlflowClient, run_id: str, markdown: str) -> None:
    client.set_tag(run_id, NOTE_TAG, markdown)
