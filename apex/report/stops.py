"""Which stop point a comparison is judged at, decided before any test figure is read, in a way that cannot lean.

A comparison (configuration vs its baseline) is judged at one stop point, chosen in one of two ways:

- fixed: `report.stop` / `--stop` names the stop fraction in advance (the pre-registered choice);
- validation, cross-fitted over seeds: only seeds present in both arms count, and each arm's validation mean of the
  primary metric (`val_<report.metric>`) over those seeds weighs one half. The stop that maximises this combined
  score over all shared seeds is the one tables and figures mark; the test, though, judges seed s's pair of models
  at the stop chosen *without seed s* (leave-one-seed-out). Why: a model that happens to be good is good on
  validation and test alike, so choosing on the same models' validation favours whichever arm is noisier (its
  lucky models pick the stop): +0.2 to +0.6 points of headline bias and 4-4.5% false "better" at a nominal 2.5%
  when arms differed in seed count or stability. Seed s's test outcome is independent of the other seeds'
  validation, so the cross-fitted choice cannot lean whatever the arms' seed counts and stabilities
  (benchmarks/calibration.py, regime "stop choice").

Ties (within `TIE_TOL`, so that equal means summed in a different order still tie) go to the earlier stop (less
training for the same score), and the report says the stop came from a tie. Without validation scores the last
shared stop point is used. Step 0 is the untrained base model, the same network in both arms: it is never chosen
and in no family of the configuration-vs-baseline tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from apex.report.collect import STOP

# Validation scores closer than this are a tie (float rounding is ~1e-16; a real difference is >= 1 query).
TIE_TOL = 1e-9


@dataclass(frozen=True)
class StopChoice:
    stop: float
    basis: str  # how it was chosen, printed in the report
    val_cell: float
    val_baseline: float
    tied: bool = False  # the stop won a tie (earliest of equal scores)
    seed_stops: dict[int, float] = field(default_factory=dict)  # seed -> stop its pair is judged at (cross-fitted)

    @property
    def agrees(self) -> bool:
        """Every seed's cross-fitted stop is the marked stop."""
        return all(np.isclose(s, self.stop) for s in self.seed_stops.values())


def earliest_best(stops: np.ndarray, scores: np.ndarray) -> int:
    """Index of the highest score, the earliest stop among scores within TIE_TOL of it."""
    order = np.argsort(stops, kind="stable")
    best = np.nanmax(scores)
    for i in order:
        if np.isfinite(scores[i]) and scores[i] >= best - TIE_TOL:
            return int(i)
    raise ValueError("no finite score")


def is_tie(scores: np.ndarray) -> bool:
    finite = scores[np.isfinite(scores)]
    return bool(finite.size > 1 and np.sum(finite >= finite.max() - TIE_TOL) > 1)


def _val_table(metrics: pd.DataFrame, cell: str, val_metric: str) -> pd.DataFrame:
    """stop × seed table of one cell's validation figure."""
    rows = metrics[metrics["cell"] == cell]
    if val_metric not in rows:
        return pd.DataFrame()
    return rows.pivot_table(index=STOP, columns="seed", values=val_metric, aggfunc="mean")


def _combined(val_a: pd.DataFrame, val_b: pd.DataFrame, stops: np.ndarray, seeds: list[int]) -> np.ndarray:
    """Each arm's mean over `seeds` at every stop, the two arms weighted equally."""
    if not seeds or val_a.empty or val_b.empty:
        return np.full(stops.size, np.nan)
    a = val_a.reindex(index=stops, columns=seeds).to_numpy(dtype=np.float64).mean(axis=1)
    b = val_b.reindex(index=stops, columns=seeds).to_numpy(dtype=np.float64).mean(axis=1)
    return (a + b) / 2.0


def choose_stop(
    metrics: pd.DataFrame, cell: str, baseline: str, fixed: float | None, metric: str = "rank_at_1"
) -> StopChoice | None:
    """The stop point of `cell` vs `baseline` (symmetric in the two); None when they share no trained stop."""
    val_metric = f"val_{metric}"
    mine, theirs = metrics[metrics["cell"] == cell], metrics[metrics["cell"] == baseline]
    shared = np.array(sorted(s for s in set(mine[STOP]) & set(theirs[STOP]) if s > 0), dtype=np.float64)
    seeds = sorted(set(mine["seed"]) & set(theirs["seed"]))
    val_a, val_b = _val_table(metrics, cell, val_metric), _val_table(metrics, baseline, val_metric)

    def figures(stop: float) -> tuple[float, float]:
        pick = [s for s in seeds if not val_a.empty and s in val_a.columns]
        a = float(val_a.loc[stop, pick].mean()) if pick and stop in val_a.index else float("nan")
        b = float(val_b.loc[stop, pick].mean()) if pick and stop in val_b.index else float("nan")
        return a, b

    if fixed is not None:
        match = shared[np.isclose(shared, fixed, atol=1e-6)]
        if not match.size:
            return None
        stop = float(match[0])
        return StopChoice(stop, f"fixed in advance (report.stop={fixed:g})", *figures(stop), False, {})
    if not shared.size:
        return None
    combined = _combined(val_a, val_b, shared, seeds)
    if not np.isfinite(combined).any():
        stop = float(shared[-1])
        return StopChoice(stop, f"last shared stop point (no {val_metric} logged)", *figures(stop), False, {})
    stop = float(shared[earliest_best(shared, combined)])
    seed_stops = {}
    for seed in seeds if len(seeds) > 1 else []:
        others = _combined(val_a, val_b, shared, [s for s in seeds if s != seed])
        seed_stops[int(seed)] = float(shared[earliest_best(shared, others)]) if np.isfinite(others).any() else stop
    basis = f"{val_metric} of both arms (shared seeds, equal weights), cross-fitted over seeds"
    return StopChoice(stop, basis, *figures(stop), is_tie(combined), seed_stops)


def display_stop(metrics: pd.DataFrame, cell: str, metric: str = "rank_at_1") -> tuple[float, str, float]:
    """A configuration's own best trained stop by its validation figure (tables and figures of uncompared cells)."""
    val_metric = f"val_{metric}"
    rows = metrics[metrics["cell"] == cell]
    val = rows.groupby(STOP)[val_metric].mean() if val_metric in rows else rows.groupby(STOP)[STOP].mean() * np.nan
    trained = val[val.index > 0] if (val.index > 0).any() else val
    finite = trained.dropna()
    if len(finite):
        i = earliest_best(finite.index.to_numpy(dtype=np.float64), finite.to_numpy())
        return float(finite.index[i]), f"its own {val_metric} (display only)", float(finite.iloc[i])
    return float(trained.index.max()), f"last stop point (no {val_metric} logged)", float("nan")
