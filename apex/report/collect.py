"""Runs → tidy tables: one row per run, one row per (run, step) of metrics, per-query outcomes on demand.

Layout read here is docs/design.md's "MLflow layout": tags `apex.cell`, `apex.cell_label`, `apex.seed`; metrics
logged with `step=` and a `stop_fraction` at every step; per-query tables `per_query/step_<step:06d>.json` written
by `mlflow.log_table` (pandas "split" JSON: {"columns": [...], "data": [[...], ...]}).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from apex.core.errors import InputError
from apex.report.clusters import QueryClusters
from apex.report.config import REPORT_METRICS
from apex.tracking import names

log = logging.getLogger("apex.report")

METRICS: tuple[str, ...] = REPORT_METRICS
SIZE_METRICS: tuple[str, ...] = ("n_queries", "corpus_size")
VAL_METRIC = "val_rank_at_1"  # the validation figure of the default primary metric
VAL_METRICS: tuple[str, ...] = tuple(f"val_{m}" for m in METRICS)  # stops are chosen on val_<report.metric>
STOP = "stop_fraction"
# Stop fractions are floats logged by several runs; round so equal budgets group together.
STOP_DECIMALS = 6


def per_query_path(step: int) -> str:
    return f"per_query/step_{step:06d}.json"


@dataclass
class SweepData:
    """Tidy tables of one sweep.

    runs:    run_id, cell, cell_label, seed, start_time, dataset_fingerprint
    metrics: run_id, cell, seed, step, stop_fraction, <METRICS>, n_queries, corpus_size, val_<METRICS>
    params:  run_id -> flattened params (strings, as MLflow stores them)
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    params: dict[str, dict[str, str]]
    notes: list[str] = field(default_factory=list)


def _seed_of(run: Run) -> int | None:
    for raw in (run.data.tags.get(names.SEED), run.data.params.get("seed")):
        if raw is None:
            continue
        try:
            return int(raw)
        except ValueError:
            return None
    return None


def _note(notes: list[str], message: str) -> None:
    log.warning(message)
    notes.append(message)


def _metric_frame(client: MlflowClient, run: Run) -> pd.DataFrame:
    """One row per logged step of one run; the last value wins if a step was logged twice."""
    keys = [k for k in (*METRICS, *SIZE_METRICS, *VAL_METRICS, STOP) if k in run.data.metrics]
    columns: dict[str, pd.Series] = {}
    for key in keys:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        columns[key] = pd.Series({m.step: m.value for m in history}, dtype="float64")
    frame = pd.DataFrame(columns)
    for key in (*METRICS, *SIZE_METRICS, *VAL_METRICS, STOP):
        if key not in frame:
            frame[key] = np.nan
    frame.index.name = "step"
    return frame.reset_index()


def _provenance_notes(runs: list[Run], notes: list[str]) -> None:
    """Say when runs come from several commits or from a tree with uncommitted changes (not fatal)."""
    commits = {r.data.tags.get(names.GIT_COMMIT, "unknown") for r in runs}
    if len(commits) > 1:
        notes.append(f"runs span {len(commits)} git commits: {', '.join(sorted(c[:10] for c in commits))}")
    dirty = sum(r.data.tags.get(names.GIT_DIRTY) == "true" for r in runs)
    if dirty:
        notes.append(f"{dirty} run(s) ran from a working tree with uncommitted changes (apex.git_dirty=true)")


def collect(client: MlflowClient, runs: list[Run]) -> SweepData:
    """Read tags, params and metric histories of `runs` into tidy tables (see `SweepData`)."""
    notes: list[str] = []
    chosen: dict[tuple[str, int], Run] = {}
    missing_tags = 0
    for run in runs:
        cell, seed = run.data.tags.get(names.CELL), _seed_of(run)
        if cell is None or seed is None:
            missing_tags += 1
            continue
        key = (cell, seed)
        # A re-run of the same cell and seed: keep the latest, which is what a user re-ran it for.
        if key not in chosen or run.info.start_time > chosen[key].info.start_time:
            chosen[key] = run
    if missing_tags:
        _note(notes, f"skipped {missing_tags} run(s) without an apex.cell tag or a seed")
    duplicates = len(runs) - missing_tags - len(chosen)
    if duplicates:
        _note(notes, f"skipped {duplicates} older duplicate run(s) of the same cell and seed (kept the latest)")

    _provenance_notes(list(chosen.values()), notes)
    rows, frames, params = [], [], {}
    for (cell, seed), run in sorted(chosen.items()):
        run_id = run.info.run_id
        rows.append(
            {
                "run_id": run_id,
                "cell": cell,
                "cell_label": run.data.tags.get(names.CELL_LABEL, cell),
                "seed": seed,
                "start_time": run.info.start_time,
                "dataset_fingerprint": run.data.tags.get(names.DATASET_FINGERPRINT, ""),
            }
        )
        params[run_id] = dict(run.data.params)
        frame = _metric_frame(client, run)
        frame.insert(0, "run_id", run_id)
        frame.insert(1, "cell", cell)
        frame.insert(2, "seed", seed)
        frames.append(frame)
    runs_table = pd.DataFrame(
        rows, columns=["run_id", "cell", "cell_label", "seed", "start_time", "dataset_fingerprint"]
    )
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not metrics.empty:
        no_stop = metrics[STOP].isna()
        if no_stop.any():
            _note(notes, f"skipped {int(no_stop.sum())} logged step(s) without a {STOP} metric")
        metrics = metrics[~no_stop].copy()
        metrics[STOP] = metrics[STOP].round(STOP_DECIMALS)
        metrics["step"] = metrics["step"].astype(int)
        repeated = metrics.duplicated(["run_id", STOP], keep="last")
        if repeated.any():
            _note(notes, f"skipped {int(repeated.sum())} earlier step(s) logging a stop_fraction again (kept the last)")
        metrics = metrics[~repeated].reset_index(drop=True)
    return SweepData(runs_table, metrics, params, notes)


def per_query_values(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-query values of every reported metric, float64 arrays in the table's row order.

    A metric column written by apex.eval (whose mean is the logged aggregate) is used as it is. Without one, the
    value is derived from the 1-based rank of the best-ranked relevant document, exact for one relevant document
    per query: rank@1 = [r = 1]; recall@k = [r <= k]; MRR@10 = 1/r if r <= 10 else 0; nDCG@10 = 1/log2(1 + r) if
    r <= 10 else 0. (With several relevant documents the derived recall and nDCG differ from the logged ones, and
    the report notes the disagreement.)
    """
    rank = table["gold_rank"].to_numpy(dtype=np.float64)
    top10 = rank <= 10
    derived = {
        "rank_at_1": (rank == 1).astype(np.float64),
        "recall_at_5": (rank <= 5).astype(np.float64),
        "recall_at_10": top10.astype(np.float64),
        "mrr_at_10": np.where(top10, 1.0 / rank, 0.0),
        "ndcg_at_10": np.where(top10, 1.0 / np.log2(1.0 + rank), 0.0),
    }
    return {
        metric: table[metric].to_numpy(dtype=np.float64) if metric in table else derived[metric] for metric in METRICS
    }


def parse_per_query(payload: object, source: str) -> pd.DataFrame:
    """Validate a `log_table` "split" payload into query_id (str), gold_rank (int) and any per-query metric columns
    of METRICS (float in [0, 1]), sorted by query_id."""
    if not isinstance(payload, dict) or "columns" not in payload or "data" not in payload:
        raise InputError("not a table written by mlflow.log_table (needs 'columns' and 'data')", file=source)
    columns = list(payload["columns"])
    for needed in ("query_id", "gold_rank"):
        if needed not in columns:
            raise InputError("missing column", file=source, field=needed)
    frame = pd.DataFrame(payload["data"], columns=columns)
    frame["query_id"] = frame["query_id"].astype(str)
    ranks = pd.to_numeric(frame["gold_rank"], errors="coerce")
    bad = ranks.isna() | (ranks < 1) | (ranks != ranks.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"gold_rank must be an integer >= 1, got {frame['gold_rank'].iloc[row]!r}",
            file=source,
            record=f"query_id {frame['query_id'].iloc[row]}",
            field="gold_rank",
        )
    frame["gold_rank"] = ranks.astype(np.int64)
    present = [metric for metric in METRICS if metric in columns]
    for metric in present:
        values = pd.to_numeric(frame[metric], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"must be a number in [0, 1], got {frame[metric].iloc[row]!r}",
                file=source,
                record=f"query_id {frame['query_id'].iloc[row]}",
                field=metric,
            )
        frame[metric] = values.astype(np.float64)
    duplicated = frame["query_id"].duplicated()
    if duplicated.any():
        query = frame["query_id"][duplicated].iloc[0]
        raise InputError(
            "query_id appears twice (was the table logged twice?)", file=source, record=query, field="query_id"
        )
    kept = ["query_id", "gold_rank", *present]
    if "relevant_docs" in columns:  # apex.eval >= issue 18: every relevant id, tab-joined (clusters of queries)
        frame["relevant_docs"] = frame["relevant_docs"].fillna("").astype(str)
        kept.append("relevant_docs")
    return frame[kept].sort_values("query_id", kind="stable").reset_index(drop=True)


def clusters_of(table: pd.DataFrame) -> QueryClusters | None:
    """Queries of `table` (in its row order) linked by shared relevant documents; None when not logged."""
    if "relevant_docs" not in table:
        return None
    return QueryClusters.from_relevant(table["relevant_docs"].tolist())


class PerQueryLoader:
    """Downloads and caches per-query tables by (run_id, step); a missing table is counted, not fatal."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client
        self._cache: dict[tuple[str, int], pd.DataFrame | None] = {}
        self.missing: list[tuple[str, int]] = []

    def load(self, run_id: str, step: int) -> pd.DataFrame | None:
        key = (run_id, int(step))
        if key not in self._cache:
            self._cache[key] = self._fetch(run_id, int(step))
        return self._cache[key]

    def _fetch(self, run_id: str, step: int) -> pd.DataFrame | None:
        path = per_query_path(step)
        source = f"runs:/{run_id}/{path}"
        with tempfile.TemporaryDirectory(prefix="apex-report-") as tmp:
            try:
                local = self._client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError) as error:
                log.warning("no per-query table %s (%s)", source, type(error).__name__)
                self.missing.append((run_id, step))
                return None
            try:
                payload = json.loads(Path(local).read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise InputError(f"not valid JSON: {error}", file=source) from error
        return parse_per_query(payload, source)
