"""Which cell is whose baseline.

A cell's baseline is the cell that holds the baseline spec's values (e.g. `erm.name=none`) and agrees with it on
every other param, except params inside the groups the spec names (`erm.*`, `sampler.*`: those are what the arms
differ in) and ignored params (seed, tracking, hydra, paths). A cell that itself holds the spec's values is a
baseline and is not compared. Zero or several candidates: the cell is left uncompared and the reason recorded.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from apex.report.config import BaselineSpec

log = logging.getLogger("apex.report")


@dataclass
class BaselineMatch:
    pairs: dict[str, str]  # cell -> its baseline cell
    baselines: list[str]  # cells that are baselines themselves
    unmatched: dict[str, str] = field(default_factory=dict)  # cell -> why it has no baseline


def is_ignored(key: str, ignore: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore)


def comparable_params(params: Mapping[str, str], spec: BaselineSpec, ignore: Sequence[str]) -> dict[str, str]:
    """The params that must be equal between a cell and its baseline."""
    groups = spec.groups
    return {
        key: value
        for key, value in params.items()
        if key.split(".", 1)[0] not in groups and not is_ignored(key, ignore)
    }


def cell_params(run_params: Sequence[Mapping[str, str]], ignore: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The params shared by all runs of one cell, and the non-ignored keys whose values differ between its runs."""
    first = dict(run_params[0])
    differing = sorted(
        key
        for key in set().union(*(p.keys() for p in run_params))
        if not is_ignored(key, ignore) and len({p.get(key) for p in run_params}) > 1
    )
    for key in differing:
        first.pop(key, None)
    return first, differing


def match_baselines(
    params_by_cell: Mapping[str, Mapping[str, str]], spec: BaselineSpec, ignore: Sequence[str]
) -> BaselineMatch:
    """Pair every non-baseline cell with its unique baseline cell (see the module docstring)."""
    baselines = sorted(cell for cell, params in params_by_cell.items() if spec.matches(params))
    keys = {cell: comparable_params(params_by_cell[cell], spec, ignore) for cell in params_by_cell}
    match = BaselineMatch(pairs={}, baselines=baselines)
    for cell in sorted(params_by_cell):
        if cell in baselines:
            continue
        candidates = [b for b in baselines if keys[b] == keys[cell]]
        if len(candidates) == 1:
            match.pairs[cell] = candidates[0]
            continue
        reason = (
            f"no cell with {spec} and otherwise equal params"
            if not candidates
            else f"{len(candidates)} cells with {spec} match ({', '.join(candidates)}); name more keys in --baseline"
        )
        match.unmatched[cell] = reason
        log.warning("cell %s: %s", cell, reason)
    return match
