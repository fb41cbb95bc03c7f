"""Which stop point a comparison is judged at, decided before any test figure is read.

A comparison (configuration vs its baseline) is judged at one stop point, chosen in one of two ways:

- fixed: `report.stop` / `--stop` names the stop fraction in advance (the pre-registered choice);
- symmetric: the trained stop point (> 0) with the highest validation rank@1 of *both arms combined* (the mean of
  the two arms' mean `val_rank_at_1`). Choosing on the configuration's validation score alone and reading the
  baseline at the same stop leans every A/A comparison toward the configuration (its noise picked the stop);
  combining both arms makes the choice the same whichever arm is called "configuration".

Ties (equal within `TIE_TOL`, so that equal means summed in a different order still tie) go to the earlier stop
(less training for the same score). Without validation scores the last shared stop point is used. Step 0 is the
untrained base model, the same network in both arms: it is never chosen, and it is in no family of tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.collect import STOP, VAL_METRIC

# Validation rank@1 values closer than this are a tie (float rounding is ~1e-16; a real difference is >= 1 query).
TIE_TOL = 1e-9


@dataclass(frozen=True)
class StopChoice:
    stop: float
    basis: str  # how it was chosen, printed in the report
    val_cell: float
    val_baseline: float


def earliest_best(stops: np.ndarray, scores: np.ndarray) -> int:
    """Index of the highest score, the earliest stop among scores within TIE_TOL of it."""
    order = np.argsort(stops, kind="stable")
    best = np.nanmax(scores)
    for i in order:
        if np.isfinite(scores[i]) and scores[i] >= best - TIE_TOL:
            return int(i)
    raise ValueError("no finite score")


def _val_by_stop(metrics: pd.DataFrame, cell: str) -> pd.Series:
    rows = metrics[metrics["cell"] == cell]
    return rows.groupby(STOP)[VAL_METRIC].mean()


def choose_stop(metrics: pd.DataFrame, cell: str, baseline: str, fixed: float | None) -> StopChoice | None:
    """The stop point of `cell` vs `baseline` (symmetric in the two); None when they share no trained stop."""
    val_a, val_b = _val_by_stop(metrics, cell), _val_by_stop(metrics, baseline)
    shared = np.array(sorted(s for s in set(val_a.index) & set(val_b.index) if s > 0), dtype=np.float64)
    if fixed is not None:
        match = shared[np.isclose(shared, fixed, atol=1e-6)]
        if not match.size:
            return None
        stop = float(match[0])
        basis = f"fixed in advance (report.stop={fixed:g})"
        return StopChoice(stop, basis, float(val_a.get(stop, np.nan)), float(val_b.get(stop, np.nan)))
    if not shared.size:
        return None
    combined = (val_a.reindex(shared).to_numpy() + val_b.reindex(shared).to_numpy()) / 2.0
    if np.isfinite(combined).any():
        stop = float(shared[earliest_best(shared, combined)])
        basis = "validation rank@1 of both arms combined"
    else:
        stop = float(shared[-1])
        basis = "last shared stop point (no val_rank_at_1 logged)"
    return StopChoice(stop, basis, float(val_a.get(stop, np.nan)), float(val_b.get(stop, np.nan)))


def display_stop(metrics: pd.DataFrame, cell: str) -> tuple[float, str, float]:
    """A configuration's own best trained stop by its validation rank@1 (tables and figures of single cells)."""
    val = _val_by_stop(metrics, cell)
    trained = val[val.index > 0] if (val.index > 0).any() else val
    finite = trained.dropna()
    if len(finite):
        i = earliest_best(finite.index.to_numpy(dtype=np.float64), finite.to_numpy())
        return float(finite.index[i]), "its own validation rank@1 (display only)", float(finite.iloc[i])
    return float(trained.index.max()), "last stop point (no val_rank_at_1 logged)", float("nan")
