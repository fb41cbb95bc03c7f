"""Per cell and stop point: mean, standard deviation, seeds and a hierarchical-bootstrap interval of each metric.

The mean and SD (ddof=1) are over the seeds' logged metric values; the interval resamples seeds and, within each
seed, the queries of its per-query table (apex.report.bootstrap). The best stop point of a cell is the one with
the highest mean validation rank@1 (`val_rank_at_1`); without it the report says so and uses the last stop point,
never the test figures (choosing on test would flatter the result).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from apex.report.bootstrap import Interval, percentile_interval
from apex.report.collect import METRICS, STOP, VAL_METRIC, PerQueryLoader, SweepData, per_query_values
from apex.report.config import ReportConfig

log = logging.getLogger("apex.report")

# Logged metric vs the mean of its per-query values: they should agree to float precision.
_AGREE_TOL = 1e-6


def _size(values: pd.Series) -> float:
    finite = values.dropna()
    return float(finite.min()) if len(finite) else float("nan")


def summarise_cells(
    sweep: SweepData, loader: PerQueryLoader, config: ReportConfig, rng: np.random.Generator, notes: list[str]
) -> pd.DataFrame:
    """Long table, one row per (cell, stop_fraction, metric).

    Columns: cell, cell_label, stop_fraction, metric, mean, sd, n_seeds, ci_low, ci_high, n_boot, n_queries,
    corpus_size, seeds (list of seeds), values (list of per-seed values, in seed order).
    """
    labels = sweep.runs.set_index("cell")["cell_label"].to_dict()
    rows: list[dict[str, object]] = []
    disagreements = 0
    for (cell, stop), group in sweep.metrics.groupby(["cell", STOP], sort=True):
        group = group.sort_values("seed")
        per_query: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
        complete = True
        for row in group.itertuples():
            table = loader.load(row.run_id, int(row.step))
            if table is None:
                complete = False
                continue
            values = per_query_values(table)
            for metric in METRICS:
                per_query[metric].append(values[metric])
                logged = getattr(row, metric)
                if np.isfinite(logged) and abs(values[metric].mean() - logged) > _AGREE_TOL:
                    disagreements += 1
        for metric in METRICS:
            seed_values = group[metric].to_numpy(dtype=np.float64)
            finite = seed_values[np.isfinite(seed_values)]
            interval = (
                percentile_interval(per_query[metric], config.n_boot, config.confidence, rng)
                if complete and per_query[metric]
                else Interval.empty()
            )
            rows.append(
                {
                    "cell": cell,
                    "cell_label": labels.get(cell, cell),
                    STOP: float(stop),
                    "metric": metric,
                    "mean": float(finite.mean()) if finite.size else float("nan"),
                    "sd": float(finite.std(ddof=1)) if finite.size >= 2 else float("nan"),
                    "n_seeds": int(finite.size),
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "n_boot": interval.n_boot,
                    "n_queries": _size(group["n_queries"]),
                    "corpus_size": _size(group["corpus_size"]),
                    "seeds": [int(s) for s in group["seed"]],
                    "values": [float(v) for v in seed_values],
                }
            )
        if group["n_queries"].nunique() > 1 or group["corpus_size"].nunique() > 1:
            notes.append(f"cell {cell} at stop {stop:g}: seeds differ in n_queries or corpus_size (smallest shown)")
    if disagreements:
        message = f"{disagreements} logged metric value(s) differ from the mean of their per-query table"
        log.warning(message)
        notes.append(message)
    return pd.DataFrame(rows)


def best_stops(sweep: SweepData) -> pd.DataFrame:
    """One row per cell: best stop_fraction, the basis of the choice, and the validation rank@1 there."""
    rows = []
    for cell, group in sweep.metrics.groupby("cell", sort=True):
        # Stop points of training only: step 0 is the untrained base model, the same network in every arm, so
        # choosing it would compare a model with itself.
        trained = group[group[STOP] > 0] if (group[STOP] > 0).any() else group
        val = trained.groupby(STOP)[VAL_METRIC].mean().dropna()
        if len(val):
            # Highest validation rank@1; ties go to the earliest stop point (less training for the same score).
            best = float(val.index[int(np.argmax(val.to_numpy()))])
            rows.append({"cell": cell, STOP: best, "basis": VAL_METRIC, "val_rank_at_1": float(val.max())})
        else:
            last = float(trained[STOP].max())
            rows.append(
                {
                    "cell": cell,
                    STOP: last,
                    "basis": "last stop point (no val_rank_at_1 logged)",
                    "val_rank_at_1": np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["cell", STOP, "basis", "val_rank_at_1"])
