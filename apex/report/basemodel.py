"""Every arm against the base model it was fine-tuned from (step 0), at the comparison's chosen stop.

A configuration can beat its baseline while both are below the zero-shot model they started from: "better" then
means "hurt less". Each arm of every comparison (the configuration and its baseline) is tested against its own
step-0 evaluation with the primary crossed test (seed s's model at the chosen stop against the base model on the
same queries; the base is one network, so the seed stage is the fine-tuned arm's), Holm and BH over this family
only (it answers another question than the primary family). The headline says in words where each arm stands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apex.report.collect import STOP, PerQueryLoader, SweepData
from apex.report.compare import _row, family
from apex.report.config import ReportConfig
from apex.report.rows import COLUMNS
from apex.report.stops import StopChoice

ROLE = "base model"
BASE = "step 0"


def base_model_family(
    sweep: SweepData,
    loader: PerQueryLoader,
    pairs: dict[str, str],
    choices: dict[str, StopChoice | None],
    config: ReportConfig,
    context: tuple[np.random.Generator, list[str], str],
) -> pd.DataFrame:
    """One row per arm (each compared cell and its baseline) at its comparison's chosen stop vs step 0."""
    rng, notes, metric = context
    metrics = sweep.metrics
    arms: dict[str, StopChoice] = {}
    for cell, baseline in sorted(pairs.items()):
        choice = choices.get(cell)
        if choice is not None:
            arms.setdefault(cell, choice)
            arms.setdefault(baseline, choice)  # a baseline shared by several cells: its first comparison's stop
    rows = []
    for arm, choice in sorted(arms.items()):
        mine = metrics[metrics["cell"] == arm]
        tuned = mine[np.isclose(mine[STOP], choice.stop)].set_index("seed", drop=False)
        if choice.seed_stops and not choice.agrees:
            picked = [mine[(mine["seed"] == s) & np.isclose(mine[STOP], v)] for s, v in choice.seed_stops.items()]
            tuned = pd.concat(picked).set_index("seed", drop=False)
        base = mine[mine[STOP] == 0].set_index("seed", drop=False)
        if base.empty:
            notes.append(f"cell {arm}: no step-0 evaluation; not compared with the base model")
            continue
        made = _row(sweep, loader, (arm, BASE, choice.stop, ROLE), (tuned, base), (config, rng, notes, metric))
        if made is not None:
            rows.append(made[0].as_dict())
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return family(table, config, role=ROLE) if len(table) else table


def standing(row: dict[str, object], alpha: float) -> str:
    """below | above | unmoved: where an arm stands against the base model at the family's level (Holm)."""
    p_holm, diff = float(row.get("p_crossed_holm", np.nan)), float(row.get("diff", np.nan))
    if int(row.get("n_seeds", 0)) < 2 or not np.isfinite(p_holm) or p_holm > alpha:
        return "unmoved"
    return "above" if diff > 0 else "below"
