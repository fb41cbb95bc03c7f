"""The report from end to end: select runs, aggregate, compare, write files, log them to the sweep parent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from apex.report.aggregate import best_stops, summarise_cells
from apex.report.baseline import BaselineMatch, cell_params, match_baselines
from apex.report.collect import PerQueryLoader, collect
from apex.report.compare import compare_all
from apex.report.config import LORA_R_PARAM, LR_PARAM, ReportConfig
from apex.report.select import SelectionError, redact_uri, select_runs

log = logging.getLogger("apex.report")


@dataclass
class ReportData:
    """Everything the writers need; every table is tidy (see docs/report.md for the columns)."""

    name: str
    meta: dict[str, object]
    config: ReportConfig
    cells: pd.DataFrame  # one row per (cell, stop_fraction, metric)
    seeds: pd.DataFrame  # one row per (run, step): the per-seed metric values
    comparisons: pd.DataFrame  # one row per (cell, stop_fraction) compared with its baseline
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)
    best: pd.DataFrame  # one row per cell: best stop point and how it was chosen
    cell_info: pd.DataFrame  # one row per cell: label, role, baseline, lr, LoRA rank
    params: dict[str, dict[str, str]]  # cell -> params shared by its runs
    notes: list[str]


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    data: ReportData
    logged_to_run: str | None
    seconds: float


def _cell_info(sweep_runs: pd.DataFrame, params: dict[str, dict[str, str]], match: BaselineMatch) -> pd.DataFrame:
    rows = []
    for cell, group in sweep_runs.groupby("cell", sort=True):
        pairs = match.pairs
        role = "baseline" if cell in match.baselines else ("compared" if cell in pairs else "no baseline")
        rows.append(
            {
                "cell": cell,
                "cell_label": group["cell_label"].iloc[0],
                "role": role,
                "baseline": pairs.get(cell, ""),
                "why_no_baseline": match.unmatched.get(cell, ""),
                "n_runs": len(group),
                LR_PARAM: params[cell].get(LR_PARAM, ""),
                LORA_R_PARAM: params[cell].get(LORA_R_PARAM, ""),
            }
        )
    return pd.DataFrame(rows)


def analyse(client: MlflowClient, config: ReportConfig) -> ReportData:
    """Read the selected runs and compute every statistic of the report (writes nothing)."""
    selection = select_runs(client, config)
    sweep = collect(client, selection.runs)
    notes = [*selection.notes, *sweep.notes]
    if sweep.metrics.empty:
        raise SelectionError(f"the selected runs logged no metrics with a stop_fraction ({selection.description})")
    params: dict[str, dict[str, str]] = {}
    for cell, group in sweep.runs.groupby("cell", sort=True):
        shared, differing = cell_params([sweep.params[r] for r in group["run_id"]], config.ignore_params)
        params[cell] = shared
        if differing:
            notes.append(f"cell {cell}: runs differ in {', '.join(differing)} (left out of baseline matching)")
    match = match_baselines(params, config.baseline, config.ignore_params)
    notes.extend(f"cell {cell}: not compared, {why}" for cell, why in match.unmatched.items())
    if not match.baselines:
        notes.append(f"no cell has the baseline values {config.baseline}; nothing is compared")

    rng = np.random.default_rng(config.seed)
    loader = PerQueryLoader(client)
    cells = summarise_cells(sweep, loader, config, rng, notes)
    comparisons = compare_all(sweep, loader, match.pairs, config, rng, notes)
    if loader.missing:
        notes.append(f"{len(loader.missing)} per-query table(s) were missing; their intervals and tests are blank")
    best = best_stops(sweep)
    labels = sweep.runs.drop_duplicates("cell").set_index("cell")["cell_label"]
    seeds = sweep.metrics.merge(sweep.runs[["run_id", "cell_label"]], on="run_id")
    meta: dict[str, object] = {
        "name": selection.name,
        "selection": selection.description,
        "parent_run_id": selection.parent_run_id,
        "experiment_id": selection.experiment_id,
        "tracking_uri": redact_uri(config.tracking_uri),
        "n_runs": len(sweep.runs),
        "n_cells": int(sweep.runs["cell"].nunique()),
        "baseline_spec": str(config.baseline),
        "labels": labels.to_dict(),
    }
    info = _cell_info(sweep.runs, params, match)
    return ReportData(
        selection.name, meta, config, cells, seeds, comparisons.table, comparisons.mcnemar, best, info, params, notes
    )


def build_report(config: ReportConfig, client: MlflowClient | None = None) -> ReportResult:
    """Analyse, write `<out_root>/<name>/` and log it to the sweep parent run under `report/`."""
    from apex.report.writers import write_all  # local: keeps matplotlib off the analysis import path

    started = time.perf_counter()
    client = client or MlflowClient(tracking_uri=config.tracking_uri)
    data = analyse(client, config)
    out_dir = Path(config.out_root) / data.name
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_all(data, out_dir)
    logged_to = None
    if config.log_to_mlflow and data.meta["parent_run_id"]:
        logged_to = str(data.meta["parent_run_id"])
        client.log_artifacts(logged_to, str(out_dir), "report")
        log.info("logged the report to run %s under report/", logged_to)
    elif config.log_to_mlflow:
        log.info("no sweep parent run (filter selection): the report is written to %s only", out_dir)
    seconds = time.perf_counter() - started
    log.info("report %s written to %s in %.1f s", data.name, out_dir, seconds)
    return ReportResult(out_dir, files, data, logged_to, seconds)
