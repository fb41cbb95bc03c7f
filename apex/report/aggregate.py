"""Per cell and stop point: mean, standard deviation, seeds and a crossed seeds × queries interval of each metric.

The mean and SD (ddof=1) are over the seeds' logged metric values; the interval treats seeds and queries as crossed
random factors (apex.report.crossed on the seeds × queries matrix of per-query values: every seed answers the same
queries, so query difficulty is shared and does not average out across seeds), cluster-robust when queries share
relevant documents (apex.report.clusters).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from apex.report.clusters import QueryClusters
from apex.report.collect import METRICS, STOP, PerQueryLoader, SweepData, clusters_of, per_query_values
from apex.report.config import ReportConfig
from apex.report.crossed import crossed_mean

log = logging.getLogger("apex.report")

# Logged metric vs the mean of its per-query values: they should agree to float precision.
_AGREE_TOL = 1e-6


def _size(values: pd.Series) -> float:
    finite = values.dropna()
    return float(finite.min()) if len(finite) else float("nan")


def _interval(per_seed: list[np.ndarray], confidence: float, clusters: QueryClusters | None) -> tuple[float, float]:
    """Crossed seeds × queries interval of the mean, on the queries every seed answered (by position)."""
    n = min(v.size for v in per_seed)
    if n < 2 or any(v.size != n for v in per_seed):
        return float("nan"), float("nan")
    low, high = crossed_mean(np.stack(per_seed), clusters).interval(confidence)
    # Every metric lies in [0, 1]; with few seeds the t interval can reach past it, which says nothing more.
    return max(float(low), 0.0), min(float(high), 1.0)


def summarise_cells(sweep: SweepData, loader: PerQueryLoader, config: ReportConfig, notes: list[str]) -> pd.DataFrame:
    """Long table, one row per (cell, stop_fraction, metric).

    Columns: cell, cell_label, stop_fraction, metric, mean, sd, n_seeds, ci_low, ci_high, n_queries,
    corpus_size, seeds (list of seeds), values (list of per-seed values, in seed order).
    """
    labels = sweep.runs.set_index("cell")["cell_label"].to_dict()
    rows: list[dict[str, object]] = []
    disagreements = 0
    for (cell, stop), group in sweep.metrics.groupby(["cell", STOP], sort=True):
        group = group.sort_values("seed")
        tables = [loader.load(row.run_id, int(row.step)) for row in group.itertuples()]
        complete = all(t is not None for t in tables)
        for row, table in zip(group.itertuples(), tables, strict=True):
            if table is None:
                continue
            values = per_query_values(table)
            for metric in METRICS:
                logged = getattr(row, metric)
                if np.isfinite(logged) and abs(values[metric].mean() - logged) > _AGREE_TOL:
                    disagreements += 1
        per_query: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
        clusters = None
        if complete:
            # The interval needs the queries every seed answered, aligned (tables are sorted by query_id).
            shared = set.intersection(*(set(t["query_id"]) for t in tables))
            clusters = clusters_of(tables[0][tables[0]["query_id"].isin(shared)])
            for table in tables:
                values = per_query_values(table[table["query_id"].isin(shared)])
                for metric in METRICS:
                    per_query[metric].append(values[metric])
        for metric in METRICS:
            seed_values = group[metric].to_numpy(dtype=np.float64)
            finite = seed_values[np.isfinite(seed_values)]
            low, high = (
                _interval(per_query[metric], config.confidence, clusters)
                if complete and per_query[metric]
                else (float("nan"), float("nan"))
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
                    "ci_low": low,
                    "ci_high": high,
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
