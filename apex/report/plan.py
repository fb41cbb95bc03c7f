"""`python -m apex.report plan`: how many seeds and queries a comparison needs, before spending compute.

The planning model is the primary test itself (apex.report.crossed): a sweep of S seeds × Q queries estimates the
difference with variance (seed + resid / Q) / S + query / Q, tested with the Cochran–Cox critical value at the
corrected level alpha / m. The three variance components come from a pilot:

- a pilot comparison (a configuration and its baseline, at its pre-chosen stop point): all three are estimated from
  the seeds × queries matrix of differences (moment estimates, truncated at 0);
- a baseline alone (>= 2 seeds, no comparison yet): the model-to-model variance and the per-query noise of one arm
  are estimated and doubled (two independent arms); per-query arm effects cannot be seen in one arm, so their
  variance is assumed to be `arm_query_ratio`² × the noise of one arm (1 by default, as benchmarks/calibration.py).

A pilot of 3 seeds estimates the model-to-model variance with 2 degrees of freedom: the estimate is skewed and
often 0, and planning from it as if it were the truth promised >= 80% power for designs whose true power was below
70% in almost half of realistic pilots. So the plan (and the report's MDE) uses each component's one-sided 95%
upper confidence limit (`Components.upper`, chi-square on the mean squares) and says so: the promised power holds
*if the variance components are no larger than those limits*, true of 95% of pilots when the mean squares are
near normal. The power itself averages the normal rejection probability over the chi-square distribution of the
future sweep's estimated seed stage, against the Cochran–Cox critical value (`Components.power`). Queries that
share relevant documents keep the pilot's share of effective query units. benchmarks/calibration.py ("pilot
power") checks the target: a promise of >= 80% comes with a true power >= 75% in at least 90% of realistic pilots.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex.report.clusters import QueryClusters
from apex.report.crossed import Components, crossed_mean


@dataclass(frozen=True)
class Pilot:
    """Where a plan's variance components came from."""

    label: str
    components: Components
    n_seeds: int
    n_queries: int
    source: str  # "comparison" or "baseline only (assumed per-query arm effects)"


def pilot_from_difference(
    label: str, d: np.ndarray, clusters: QueryClusters | None = None, upper: bool = True
) -> Pilot:
    """Components of a (seeds, queries) matrix of per-query differences (configuration − baseline): their 95% upper
    confidence limits (`upper`, what the plan uses), or the point estimates."""
    if d.shape[0] < 2:
        raise ValueError(f"{label}: a pilot needs >= 2 seeds to see training randomness")
    result = crossed_mean(d, clusters)
    components = Components.upper(result) if upper else Components.from_crossed(result)
    source = "comparison; variance components at their 95% upper confidence limits" if upper else "comparison"
    return Pilot(label, components, d.shape[0], d.shape[1], source)


def pilot_from_baseline(label: str, y: np.ndarray, arm_query_ratio: float = 1.0, upper: bool = True) -> Pilot:
    """Components of a future comparison from one arm's (seeds, queries) outcomes (see the module docstring)."""
    if y.shape[0] < 2:
        raise ValueError(f"{label}: a pilot needs >= 2 seeds to see training randomness")
    one = crossed_mean(y)
    resid = float(one.var_resid)
    seed = Components.upper(one).seed if upper else float(one.var_seed)  # 95% upper limit, as for a comparison
    components = Components(2.0 * seed, arm_query_ratio**2 * resid, 2.0 * resid)
    source = f"baseline only (per-query arm effects assumed: ratio {arm_query_ratio:g})"
    return Pilot(label, components, y.shape[0], y.shape[1], source)


def plan_table(
    pilot: Pilot,
    seeds: Sequence[int],
    queries: Sequence[int],
    effects: Sequence[float],
    alpha: float,
    power: float,
    family: int = 1,
) -> pd.DataFrame:
    """One row per design (seeds, queries): the MDE and the power at each effect (fractions, not points)."""
    level = alpha / max(family, 1)
    rows = []
    for n_seeds, n_queries in itertools.product(seeds, queries):
        row: dict[str, object] = {"seeds": n_seeds, "queries": n_queries, "level": level}
        row["mde"] = pilot.components.mde(n_seeds, n_queries, level, power)
        for effect in effects:
            row[f"power_{100 * effect:g}pt"] = pilot.components.power(n_seeds, n_queries, effect, level)
        rows.append(row)
    return pd.DataFrame(rows)


def format_plan(pilot: Pilot, table: pd.DataFrame, alpha: float, power: float, family: int) -> str:
    c = pilot.components
    now = pilot.components.mde(pilot.n_seeds, pilot.n_queries, alpha / max(family, 1), power)
    lines = [
        f"pilot: {pilot.label} ({pilot.source}; {pilot.n_seeds} seeds × {pilot.n_queries} queries)",
        f"  sd of the difference: between models {100 * c.seed**0.5:.2f} points, per-query arm effect "
        f"{100 * c.query**0.5:.1f}, seed × query noise {100 * c.resid**0.5:.1f}",
        "  conditional on the variance components being no larger than their 95% upper confidence limits"
        if "upper" in pilot.source
        else "  conditional on the pilot's point estimates of the variance components (optimistic with few seeds)",
        f"  this sweep ({pilot.n_seeds} × {pilot.n_queries}) detects {100 * now:.1f} points with {100 * power:.0f}% "
        f"power at α = {alpha:g}" + (f" / {family} comparisons" if family > 1 else ""),
    ]
    power_columns = [col for col in table.columns if col.startswith("power_")]
    header = f"  {'seeds':>5} {'queries':>7} {'MDE (pts)':>9} " + " ".join(
        f"{'power ' + col[6:]:>11}" for col in power_columns
    )
    lines.append(header)
    for row in table.to_dict(orient="records"):
        cells = " ".join(f"{100 * row[col]:10.0f}%" for col in power_columns)
        lines.append(f"  {row['seeds']:>5} {row['queries']:>7} {100 * row['mde']:9.1f} {cells}")
    return "\n".join(lines)


def _numbers(text: str, kind: type) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def parse_plan_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apex.report plan",
        description="Seeds and queries needed to detect an effect with the report's primary test, from a pilot sweep.",
    )
    for option in ("--tracking-uri", "--experiment", "--sweep", "--filter", "--baseline"):
        parser.add_argument(option)
    parser.add_argument("--stop", type=float, help="stop fraction fixed in advance (default: cross-fitted validation)")
    parser.add_argument("--metric", help="primary metric (default: the runs' report.metric, else the dataset's)")
    parser.add_argument("--effect", type=lambda t: _numbers(t, float), default=[1.0, 2.0, 3.0], help="points")
    parser.add_argument("--seeds", type=lambda t: _numbers(t, int), default=[3, 5, 10])
    parser.add_argument("--queries", type=lambda t: _numbers(t, int), default=[300, 1000, 3000])
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--family", type=int, help="number of primary comparisons (default: the pilot's)")
    parser.add_argument("--arm-query-ratio", type=float, default=1.0, help="baseline-only pilots: assumed ratio")
    return parser.parse_args(argv)


def pilots_from_sweep(config, arm_query_ratio: float) -> tuple[list[Pilot], int]:
    """Pilots of every compared configuration at its pre-chosen stop; baselines alone when nothing is compared."""
    from mlflow import MlflowClient

    from apex.core.preflight import check_tracking
    from apex.report.baseline import cell_params, match_baselines
    from apex.report.build import fixed_stop, primary_metric, short_labels
    from apex.report.collect import STOP, PerQueryLoader, collect, per_query_values
    from apex.report.compare import aligned_outcomes
    from apex.report.select import select_runs
    from apex.report.stops import choose_stop, display_stop

    check_tracking(config.tracking_uri, config.experiment, must_exist=True)  # read-only: never create a database
    client = MlflowClient(tracking_uri=config.tracking_uri)
    sweep = collect(client, select_runs(client, config).runs)
    notes: list[str] = []
    params = {
        cell: cell_params([sweep.params[r] for r in group["run_id"]], config.ignore_params)[0]
        for cell, group in sweep.runs.groupby("cell", sort=True)
    }
    labels = short_labels(sweep.runs.drop_duplicates("cell").set_index("cell")["cell_label"].to_dict())
    match = match_baselines(params, config.baseline, config.ignore_params)
    loader = PerQueryLoader(client)
    fixed = fixed_stop(config, params, notes)
    metric = primary_metric(config, params, notes)[0]
    metrics = sweep.metrics
    pilots = []
    for cell, base in sorted(match.pairs.items()):
        choice = choose_stop(metrics, cell, base, fixed, metric)
        if choice is None:
            continue
        a_runs = metrics[(metrics["cell"] == cell) & (metrics[STOP] == choice.stop)].set_index("seed", drop=False)
        b_runs = metrics[(metrics["cell"] == base) & (metrics[STOP] == choice.stop)].set_index("seed", drop=False)
        seeds = sorted(set(a_runs.index) & set(b_runs.index))
        outcomes = aligned_outcomes(loader, a_runs, b_runs, seeds, notes, metric) if len(seeds) >= 2 else None
        if outcomes is not None:
            label = f"{labels.get(cell, cell)} vs {labels.get(base, base)} at stop {choice.stop:g}, {metric}"
            pilots.append(pilot_from_difference(label, outcomes.a - outcomes.b, outcomes.clusters))
    family = len(pilots)
    if not pilots:
        for cell in match.baselines:
            stop = display_stop(metrics, cell, metric)[0]
            runs = metrics[(metrics["cell"] == cell) & (metrics[STOP] == stop)]
            tables = [loader.load(r.run_id, int(r.step)) for r in runs.itertuples()]
            if len(tables) < 2 or any(t is None for t in tables):
                continue
            shared = set.intersection(*(set(t["query_id"]) for t in tables))
            y = np.stack([per_query_values(t[t["query_id"].isin(shared)])[metric] for t in tables])
            pilots.append(pilot_from_baseline(f"{labels.get(cell, cell)} at stop {stop:g}", y, arm_query_ratio))
    return pilots, max(family, 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Print a plan for every pilot found in the selected sweep; 1 when there is none."""
    from apex.report.config import ReportConfig, ReportConfigError
    from apex.report.select import SelectionError

    args = parse_plan_args(argv)
    keys = ("tracking_uri", "experiment", "sweep", "filter", "baseline", "stop", "metric", "alpha", "power")
    try:
        config = ReportConfig.from_cfg({key: getattr(args, key) for key in keys})
        pilots, family = pilots_from_sweep(config, args.arm_query_ratio)
    except ReportConfigError as error:
        print(f"error: {error}")
        return 2
    except SelectionError as error:
        print(f"error: {error}")
        return 1
    if not pilots:
        print("error: no pilot: the sweep has no comparison and no baseline with >= 2 seeds and per-query tables")
        return 1
    family = args.family or family
    effects = [e / 100 for e in args.effect]
    print(
        f"primary test: crossed seeds × queries; α = {args.alpha:g} / {family} comparison(s); target power "
        f"{100 * args.power:.0f}%"
    )
    for pilot in pilots:
        table = plan_table(pilot, args.seeds, args.queries, effects, args.alpha, args.power, family)
        print(format_plan(pilot, table, args.alpha, args.power, family))
    return 0
