"""The report from end to end: select runs, aggregate, compare, write files, log them to the sweep parent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from apex.core.paths import child_path
from apex.report.aa import aa_check
from apex.report.aggregate import summarise_cells
from apex.report.baseline import BaselineMatch, cell_params, match_baselines
from apex.report.basemodel import base_model_family
from apex.report.collect import STOP, PerQueryLoader, SweepData, collect
from apex.report.compare import compare_all
from apex.report.config import LORA_R_PARAM, LR_PARAM, ReportConfig
from apex.report.provenance import data_versions, unpaired_test_data_warnings, version_notes
from apex.report.select import SelectionError, redact_uri, select_runs
from apex.report.stops import StopChoice, choose_stop, display_stop

log = logging.getLogger("apex.report")


@dataclass
class ReportData:
    """Everything the writers need; every table is tidy (see docs/report.md for the columns)."""

    name: str
    meta: dict[str, object]
    config: ReportConfig
    cells: pd.DataFrame  # one row per (cell, stop_fraction, metric)
    seeds: pd.DataFrame  # one row per (run, step): the per-seed metric values
    comparisons: pd.DataFrame  # one row per (cell, stop_fraction) compared with its baseline (rows.ComparisonRow)
    base: pd.DataFrame  # one row per arm: at its comparison's stop against the base model (step 0), own family
    mcnemar: pd.DataFrame  # one row per (cell, stop_fraction, seed)
    best: pd.DataFrame  # one row per cell: the stop point it is judged (compared) or shown (baseline) at, and why
    aa: pd.DataFrame  # built-in A/A check: one row per half-split of a baseline with >= 6 seeds
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


def short_labels(labels: dict[str, str]) -> dict[str, str]:
    """Cell labels without the overrides every cell shares (e.g. `experiment=paper_sweep` on every line)."""
    tokens = [label.split() for label in labels.values()]
    common = set.intersection(*(set(t) for t in tokens)) if len(tokens) > 1 else set()
    return {cell: " ".join(t for t in label.split() if t not in common) or label for cell, label in labels.items()}


def primary_metric(config: ReportConfig, params: dict[str, dict[str, str]], notes: list[str]) -> tuple[str, str]:
    """(metric, why): `--metric`, else the runs' logged `report.metric`, else the dataset's own.

    The default lives here, read from the runs' params, because it follows from what the runs evaluated (a BEIR
    folder's graded, many-document judgements, which BEIR and MTEB rank by nDCG@10; SQuAD's one gold paragraph,
    the paper's rank@1), and every run logged `dataset.name` before the test set was read.
    """
    logged = {p.get("report.metric") for p in params.values()} - {None, "null", "None", ""}
    if config.metric is not None:
        if logged and logged != {config.metric}:
            notes.append(f"--metric {config.metric} overrides the sweep config's report.metric ({', '.join(logged)})")
        return config.metric, "--metric"
    if len(logged) == 1:
        return logged.pop(), "report.metric, fixed with the sweep"
    if logged:
        notes.append(f"runs log different report.metric values ({', '.join(sorted(logged))}); used the default")
    datasets = {p.get("dataset.name") for p in params.values()}
    if datasets == {"beir"}:
        return "ndcg_at_10", "the default for a BEIR folder: graded judgements, several relevant documents"
    return "rank_at_1", "the default: one gold document per query, the paper's metric"


def fixed_stop(config: ReportConfig, params: dict[str, dict[str, str]], notes: list[str]) -> float | None:
    """`--stop`, else the `report.stop` every run logged; None = the cross-fitted validation choice."""
    logged = {p.get("report.stop") for p in params.values()} - {None, "null", "None", ""}
    if config.stop is not None:
        if logged and logged != {str(config.stop)}:
            notes.append(f"--stop {config.stop:g} overrides the sweep config's report.stop ({', '.join(logged)})")
        return float(config.stop)
    if len(logged) == 1:
        return float(logged.pop())
    if logged:
        notes.append(f"runs log different report.stop values ({', '.join(sorted(logged))}); chose stops by validation")
    return None


def stop_table(
    sweep: SweepData,
    params: dict[str, dict[str, str]],
    choices: dict[str, StopChoice | None],
    metric: str,
) -> pd.DataFrame:
    """One row per cell: compared cells at their comparison's stop, every other cell at its own best (display)."""
    rows = []
    for cell in sorted(params):
        choice = choices.get(cell)
        if choice is not None:
            seeds = " ".join(f"{s}:{v:g}" for s, v in sorted(choice.seed_stops.items())) if not choice.agrees else ""
            rows.append(
                {"cell": cell, STOP: choice.stop, "basis": choice.basis, "val": choice.val_cell}
                | {"val_baseline": choice.val_baseline, "compared": True, "tied": choice.tied, "seed_stops": seeds}
            )
        else:
            stop, basis, val = display_stop(sweep.metrics, cell, metric)
            rows.append(
                {"cell": cell, STOP: stop, "basis": basis, "val": val, "val_baseline": np.nan}
                | {"compared": False, "tied": False, "seed_stops": ""}
            )
    columns = ["cell", STOP, "basis", "val", "val_baseline", "compared", "tied", "seed_stops"]
    return pd.DataFrame(rows, columns=columns)


def analyse(client: MlflowClient, config: ReportConfig) -> ReportData:
    """Read the selected runs and compute every statistic of the report (writes nothing)."""
    selection = select_runs(client, config)
    sweep = collect(client, selection.runs)
    notes = [*selection.notes, *sweep.notes]
    if sweep.metrics.empty:
        raise SelectionError(f"the selected runs logged no metrics with a stop_fraction ({selection.description})")
    full_labels = sweep.runs.drop_duplicates("cell").set_index("cell")["cell_label"].to_dict()
    sweep.runs["cell_label"] = sweep.runs["cell"].map(short_labels(full_labels))
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
    versions = data_versions(selection.runs)  # provenance tags: test data and DVC md5s per cell
    notes[:0] = unpaired_test_data_warnings(versions, match.pairs)
    notes.extend(version_notes(versions))

    rng = np.random.default_rng(config.seed)
    loader = PerQueryLoader(client)
    metric, metric_why = primary_metric(config, params, notes)
    cells = summarise_cells(sweep, loader, config, notes)
    fixed = fixed_stop(config, params, notes)
    choices = {cell: choose_stop(sweep.metrics, cell, base, fixed, metric) for cell, base in match.pairs.items()}
    comparisons = compare_all(sweep, loader, match.pairs, choices, config, rng, notes, metric)
    base = base_model_family(sweep, loader, match.pairs, choices, config, (rng, notes, metric))
    best = stop_table(sweep, params, choices, metric)
    # A baseline compared by some cell is shown at that comparison's stop (the rows the verdict compares).
    for cell, baseline in sorted(match.pairs.items()):
        if choices.get(cell) is not None and baseline in set(best["cell"]):
            at = best["cell"] == baseline
            if not bool(best.loc[at, "compared"].iloc[0]):
                best.loc[at, [STOP, "basis", "val", "compared"]] = [
                    choices[cell].stop,
                    f"the stop of its comparison with {cell}",
                    choices[cell].val_baseline,
                    True,
                ]
    aa = aa_check(sweep, loader, match.baselines, best, config, rng, metric)
    if loader.missing:
        notes.append(f"{len(loader.missing)} per-query table(s) were missing; their intervals and tests are blank")
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
        "full_labels": full_labels,
        "stop_rule": "fixed in advance"
        if fixed is not None
        else f"val_{metric} of both arms (shared seeds, equal weights), each seed judged at the stop chosen without it",
        "metric": metric,
        "metric_why": metric_why,
        "stop_fixed": fixed,
    }
    info = _cell_info(sweep.runs, params, match)
    tables = (cells, seeds, comparisons.table, base, comparisons.mcnemar, best, aa, info)
    return ReportData(selection.name, meta, config, *tables, params, notes)


def build_report(config: ReportConfig, client: MlflowClient | None = None) -> ReportResult:
    """Analyse, write `<out_root>/<name>/` and log it to the sweep parent run under `report/`."""
    from apex.report.writers import write_all  # local: keeps matplotlib off the analysis import path

    started = time.perf_counter()
    client = client or MlflowClient(tracking_uri=config.tracking_uri)
    data = analyse(client, config)
    out_dir = child_path(config.out_root, data.name, "report name (--name, or the sweep's run name)")
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
