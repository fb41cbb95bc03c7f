"""A sweep's grid: the jobs of `python -m apex.run -m a=1,2 b=x` as lists of overrides, Hydra's basic grammar.

The same grid Hydra's basic sweeper builds (every combination of the discrete sweeps, the sweeper's `params` first,
the command line overriding them), built here from Hydra's public override parser so that apex's sweeper does not
depend on Hydra's internal one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException


def grid(
    arguments: Sequence[str], params: Mapping[str, Any] | None, parser: OverridesParser, max_batch_size: int | None
) -> list[list[list[str]]]:
    """Batches of jobs, each job a list of `key=value` overrides; one batch unless `max_batch_size` is set."""
    choices: dict[str, list[str]] = {}  # key -> its values as overrides; a later override of a key replaces it
    for override in parser.parse_overrides([*(f"{k}={v}" for k, v in (params or {}).items()), *arguments]):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            kind = override.value_type.name if override.value_type else "?"
            raise HydraException(f"apex's sweeper takes discrete sweeps (a=1,2, range, choice), not {kind}: {key}")
    jobs = [list(combination) for combination in itertools.product(*choices.values())]
    size = len(jobs) if not max_batch_size or max_batch_size < 0 else max_batch_size
    return [jobs[i : i + size] for i in range(0, len(jobs), size)] or [[]]
