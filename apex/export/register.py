"""`python -m apex.report ... --register NAME`: the winning configuration's model into the MLflow Model Registry.

The winner is the cell with the highest mean *validation* rank@1 at the stop point the report judged it at (the
report fixes that stop on validation figures too), so neither choice looks at the test split; without validation
figures the test mean decides, and the tag ``apex.winner_basis`` says so. Its best seed (highest validation rank@1,
then lowest seed) is exported, logged as an MLflow model on its run and registered; ``--register-seeds all``
registers every seed. Each version carries the report's numbers as tags and the report's headline as description.
This module also sets the sweep parent's description (``mlflow.note.content``) to the report's headline.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apex.core.paths import check_name, child_path
from apex.tracking import names

if TYPE_CHECKING:  # imported by the report's argument parsing: keep it light
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger("apex.export")

STOP = "stop_fraction"


@dataclass(frozen=True)
class RegisterOptions:
    name: str | None
    seeds: str = "best"  # best | all
    export_root: Path = Path("experiments/exports")


def split_register_args(argv: Sequence[str]) -> tuple[list[str], RegisterOptions]:
    """Take ``--register NAME``, ``--register-seeds best|all`` and ``--export-root DIR`` (where the registered
    models are exported, default experiments/exports) out of the report's command line."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--register", dest="name")
    parser.add_argument("--register-seeds", dest="seeds", choices=("best", "all"), default="best")
    parser.add_argument("--export-root", type=Path, default=RegisterOptions.export_root)
    known, rest = parser.parse_known_args(list(argv))
    if known.name is not None:  # it becomes a folder under --export-root: checked before any work
        check_name(known.name, "--register", source="command line")
    return rest, RegisterOptions(known.name, known.seeds, known.export_root)


def headline_text(report: Any) -> str:
    """The report's headline paragraphs (Markdown), with a first line naming the report."""
    from apex.report.markdown import headline

    return f"**apex report {report.data.name}**\n\n" + "\n\n".join(headline(report.data))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class Winner:
    cell: str
    label: str
    stop: float
    basis: str
    runs: pd.DataFrame  # the cell's rows at that stop: run_id, seed, step, rank_at_1, val_rank_at_1, ...
    tags: dict[str, str]
    metric: str = "rank_at_1"  # the report's primary metric, which chose the winner


def winner(report: Any) -> Winner:
    """The winning cell of a report, its runs at the judged stop point, and the report's numbers about it.

    Chosen on the report's primary metric (report.metric: nDCG@10 for a BEIR folder, rank@1 for SQuAD), on its
    validation figure when every cell has one (the test split stays for judging), else on the test figure.
    """
    data = report.data
    metric = str(data.meta.get("metric") or "rank_at_1")
    seeds = data.seeds
    best = data.best.set_index("cell")
    scores = []
    for cell, row in best.iterrows():
        at_stop = seeds[(seeds["cell"] == cell) & ((seeds[STOP] - float(row[STOP])).abs() < 1e-9)]
        val = _finite(at_stop[f"val_{metric}"].mean()) if f"val_{metric}" in at_stop else None
        test = _finite(at_stop[metric].mean())
        scores.append((cell, float(row[STOP]), val, test, at_stop))
    if not scores:
        raise LookupError(f"report {data.name} has no cells to register")
    use_val = all(val is not None for _, _, val, _, _ in scores)
    cell, stop, val, test, runs = max(scores, key=lambda s: (s[2] if use_val else s[3]) or -1.0)
    label = str(data.meta["labels"].get(cell, cell))
    tags = {
        names.REPORT: data.name,
        names.REPORT_PARENT_RUN_ID: str(data.meta.get("parent_run_id")),
        names.CELL: cell,
        names.CELL_LABEL: label,
        names.STOP_FRACTION_TAG: f"{stop:g}",
        names.WINNER_BASIS: f"validation {metric} (mean over seeds)" if use_val else f"test {metric} (no validation)",
        f"mean_test_{metric}": f"{test:.4f}",
        "n_seeds": str(len(runs)),
    }
    if val is not None:
        tags[f"mean_val_{metric}"] = f"{val:.4f}"
    tags.update(_interval_tags(data.cells, cell, stop, metric))
    tags.update(_comparison_tags(data.comparisons, cell, stop))
    return Winner(cell, label, stop, tags[names.WINNER_BASIS], runs, tags, metric)


def _interval_tags(cells: pd.DataFrame, cell: str, stop: float, metric: str) -> dict[str, str]:
    rows = cells[(cells["cell"] == cell) & ((cells[STOP] - stop).abs() < 1e-9) & (cells["metric"] == metric)]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    out = {k: f"{float(row[k]):.4f}" for k in ("ci_low", "ci_high") if _finite(row.get(k)) is not None}
    out |= {f"{k}": str(int(row[k])) for k in ("n_queries", "corpus_size") if _finite(row.get(k)) is not None}
    return {f"test_{metric}_{k}" if k.startswith("ci") else k: v for k, v in out.items()}


def _comparison_tags(comparisons: pd.DataFrame, cell: str, stop: float) -> dict[str, str]:
    if comparisons.empty or "cell" not in comparisons:
        return {"baseline_comparison": "none (baseline or unmatched cell)"}
    rows = comparisons[(comparisons["cell"] == cell) & ((comparisons[STOP] - stop).abs() < 1e-9)]
    if rows.empty:
        return {"baseline_comparison": "none (baseline or unmatched cell)"}
    row = rows.iloc[0]
    out = {"baseline_cell": str(row.get("baseline", ""))}
    for key in ("mean_baseline", "diff", "ci_low", "ci_high", "p_crossed", "p_crossed_holm"):
        if _finite(row.get(key)) is not None:
            out[f"vs_baseline_{key}"] = f"{float(row[key]):.4g}"
    if "verdict" in row:
        out["vs_baseline_verdict"] = str(row["verdict"])
    return out


def chosen_runs(win: Winner, seeds: str) -> pd.DataFrame:
    runs = win.runs.copy()
    val = f"val_{win.metric}"
    key = val if val in runs and runs[val].notna().all() else win.metric
    runs = runs.sort_values([key, "seed"], ascending=[False, True])
    return runs if seeds == "all" else runs.head(1)


def register_winner(report: Any, options: RegisterOptions, client: MlflowClient) -> list[Any]:
    """Export, log and register the winner's best seed (or every seed); returns the model versions."""
    from apex.export import export_run
    from apex.export.mlflow_model import log_export, register

    win = winner(report)
    description = headline_text(report)
    versions = []
    for row in chosen_runs(win, options.seeds).itertuples():
        out_dir = child_path(options.export_root, f"{options.name}-{row.run_id[:12]}-step{int(row.step)}", "--register")
        result = export_run(client, row.run_id, int(row.step), out_dir)
        tags = {**win.tags, names.RUN_ID: row.run_id, names.SEED: str(row.seed), names.STEP: str(int(row.step)),
                f"test_{win.metric}": f"{float(getattr(row, win.metric)):.4f}"}  # fmt: skip
        model_uri = log_export(client, result, tags={names.REGISTERED_AS: options.name})
        version = register(client, model_uri, options.name, tags, description)
        log.info("registered %s version %s: run %s step %d", options.name, version.version, row.run_id, row.step)
        versions.append(version)
    return versions


def after_report(report: Any, options: RegisterOptions, client: MlflowClient) -> None:
    """The sweep parent's description becomes the report's headline; ``--register`` registers the winner."""
    from apex.tracking.view import set_run_description

    parent = report.data.meta.get("parent_run_id")
    if parent:
        set_run_description(client, str(parent), headline_text(report))
    if options.name:
        versions = register_winner(report, options, client)
        for version in versions:
            print(f"registered model {options.name} version {version.version} (run {version.run_id})")
