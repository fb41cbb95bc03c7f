"""A finished run as the export sees it: its resolved config, its stop points and the adapter saved at each.

Everything is read through ``MlflowClient``, so a run in the embedded sqlite database and a run on a tracking
server export the same way. Runs logged before adapters were kept per stop point have only ``adapter/`` (the last
stop point's); it is used for that step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from apex.core.configs import RunConfigs, load_configs
from apex.tracking import names

log = logging.getLogger("apex.export")

ADAPTERS_DIR = "adapters"  # adapters/step_000123/: one per stop point (apex.tracking.view.log_stop_point_adapter)
LEGACY_ADAPTER_DIR = "adapter"  # older runs: the last stop point's adapter only
CONFIG_ARTIFACT = "config/resolved.yaml"


class ExportError(LookupError):
    """The run or stop point asked for does not exist, or cannot be exported; the message says what does exist."""


def adapter_artifact(step: int) -> str:
    return f"{ADAPTERS_DIR}/step_{step:06d}"


@dataclass
class RunSource:
    """One job run: id, name, resolved config, stop points (step → fraction, 0 = zero-shot), adapters, metrics."""

    run: Run
    config: dict[str, Any]
    stops: dict[int, float]
    adapters: dict[int, str]  # step → artifact path of its adapter
    metrics: dict[int, dict[str, float]]  # step → test (and val_) metrics logged at that step

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def run_name(self) -> str:
        return self.run.info.run_name or self.run_id

    def typed(self) -> RunConfigs:
        """The run's config sections typed and validated exactly as the run read them."""
        try:
            return load_configs(self.config)
        except ValueError as error:
            raise ExportError(
                f"run {self.run_id}: its {CONFIG_ARTIFACT} does not fit this apex version: {error}"
            ) from None

    def choose_step(self, step: int | str | None) -> int:
        """The stop point to export: ``chosen`` (default: the one the run chose on validation, its ``chosen_step``
        metric; runs that logged none: ``best``), an int, ``last`` or ``best`` (highest val rank@1, ties earliest).
        """
        trained = sorted(s for s in self.adapters if s > 0)
        if not trained:
            raise ExportError(f"run {self.run_id} logged no adapter (artifacts {ADAPTERS_DIR}/ or adapter/)")
        if step is None or step == "chosen":
            chosen = self.run.data.metrics.get(names.CHOSEN_STEP)
            if chosen is not None and int(chosen) in self.adapters:
                return int(chosen)
            has_val = any("val_rank_at_1" in self.metrics.get(s, {}) for s in trained)
            return self.choose_step("best" if has_val else "last")
        if step == "last":
            return trained[-1]
        if step == "best":
            scored = [(self.metrics.get(s, {}).get("val_rank_at_1"), s) for s in trained]
            scored = [(v, s) for v, s in scored if v is not None]
            if not scored:
                raise ExportError(f"run {self.run_id} logged no val_rank_at_1; give --step, one of {trained}")
            best = max(v for v, _ in scored)
            return min(s for v, s in scored if v == best)
        try:
            wanted = int(step)
        except ValueError:
            raise ExportError(f"--step must be a step number, 'chosen', 'last' or 'best', got {step!r}") from None
        if wanted == 0:
            raise ExportError(f"step 0 is the untrained base model (nothing to merge); trained stop points: {trained}")
        if wanted not in self.adapters:
            where = ", ".join(f"{s} (stop {self.stops.get(s, float('nan')):.2f})" for s in trained)
            raise ExportError(f"run {self.run_id} has no adapter for step {wanted}; saved stop points: {where}")
        return wanted


def _recent_runs(client: MlflowClient, limit: int = 10) -> str:
    lines = []
    for experiment in client.search_experiments(max_results=20):
        for run in client.search_runs([experiment.experiment_id], "tags.`apex.kind` = 'job'", max_results=limit):
            lines.append(f"  {run.info.run_id}  {run.info.run_name}  ({experiment.name}, {run.info.status})")
    return "\n".join(lines[:limit]) or "  (no apex job runs in this store)"


def get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ExportError(
            f"no run with id {run_id!r} in {client.tracking_uri}; recent apex job runs:\n{_recent_runs(client)}"
        ) from None


def _stops(client: MlflowClient, run_id: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, "stop_fraction")}


def _metrics(client: MlflowClient, run: Run, steps: list[int]) -> dict[int, dict[str, float]]:
    names = [k for k in run.data.metrics if k.endswith(("rank_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10"))]
    names += [k for k in ("n_queries", "corpus_size") if k in run.data.metrics]
    out: dict[int, dict[str, float]] = {s: {} for s in steps}
    for name in names:
        for m in client.get_metric_history(run.info.run_id, name):
            if m.step in out:
                out[m.step][name] = m.value
    return out


def _adapters(client: MlflowClient, run_id: str, stops: dict[int, float]) -> dict[int, str]:
    found = {}
    for item in client.list_artifacts(run_id, ADAPTERS_DIR):
        name = Path(item.path).name
        if item.is_dir and name.startswith("step_") and name[5:].isdigit():
            found[int(name[5:])] = item.path
    if not found and any(a.path == LEGACY_ADAPTER_DIR for a in client.list_artifacts(run_id)):
        trained = [s for s in stops if s > 0]
        if trained:
            found[max(trained)] = LEGACY_ADAPTER_DIR
    return found


def load_source(client: MlflowClient, run_id: str) -> RunSource:
    """Read what the export needs from one run; a run that is not an apex job fails with what it lacks."""
    run = get_run(client, run_id)
    if run.data.tags.get(names.KIND) == names.KIND_SWEEP:
        raise ExportError(f"run {run_id} is a sweep parent; export one of its job runs (see its child runs)")
    try:
        config_path = client.download_artifacts(run_id, CONFIG_ARTIFACT)
    except (MlflowException, OSError):
        raise ExportError(f"run {run_id} has no {CONFIG_ARTIFACT} artifact: not an apex job run") from None
    config = yaml.safe_load(Path(config_path).read_text())
    stops = _stops(client, run_id)
    return RunSource(run, config, stops, _adapters(client, run_id, stops), _metrics(client, run, sorted(stops)))


def download_adapter(client: MlflowClient, source: RunSource, step: int, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(source.run_id, source.adapters[step], str(dst)))
