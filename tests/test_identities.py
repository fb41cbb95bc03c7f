"""Identities are derived, and pinned.

Pinned: the cell hash and the store keys (prepared, negatives, maps) of every shipped config option (and every ERM
backend with every sampler) are what tests/data/identities.json records (tests/identity_pins.py explains the
stubbed parts). An identity that moves splits cells or orphans stored outputs: change it only on purpose, say why
in the commit, and regenerate the file with `python tests/identity_pins.py > tests/data/identities.json`.

Derived: for every registered sampler and ERM backend, changing any key of its config moves the cell and its store
key, and changing an operational key moves neither (no list of keys kept by hand can fall behind).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hydra_conf import compose_config
from identity_pins import compute
from omegaconf import OmegaConf

from apex.core.configs import REGISTRIES, cell_of, load_configs
from apex.store import keys
from apex.tracking.params import flatten

PINNED = json.loads((Path(__file__).parent / "data" / "identities.json").read_text("utf-8"))
SHIPPED = {
    group: sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / group).glob("*.yaml")) for group in REGISTRIES
}


@pytest.fixture(scope="module")
def current():
    original = keys.code_version
    try:
        yield json.loads(json.dumps(compute(), default=str))
    finally:
        keys.code_version = original


def test_every_option_is_pinned(current) -> None:
    assert sorted(current) == sorted(PINNED)


@pytest.mark.parametrize("option", sorted(PINNED))
def test_identities_match_the_pins(current, option: str) -> None:
    got, want = current[option], PINNED[option]
    for part in ("negatives_inputs", "maps_inputs"):  # the inputs first: their difference says what moved
        assert got[part] == want[part], f"{option}: {part}"
    for part in ("cell", "prepared", "negatives", "maps"):
        assert got[part] == want[part], f"{option}: {part}"


def changed(value: Any) -> Any:
    """Another value of the same shape (validity does not matter: identities are computed, not validated)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (*value, "x")
    if value is None:
        return 0.5
    if dataclasses.is_dataclass(value):
        first = dataclasses.fields(value)[0].name
        return dataclasses.replace(value, **{first: changed(getattr(value, first))})
    raise TypeError(value)


def identities(typed, flat: dict[str, Any], group: str) -> tuple[str, str]:
    if group == "sampler":
        store = keys.negatives_inputs("fp", typed.model, typed.sampler, 0)
    else:
        store = keys.maps_inputs("fp", typed.erm, ("train",))
    return cell_of(flat, typed), keys.digest(store)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in sorted(SHIPPED) for o in SHIPPED[g]])
def test_every_key_of_a_component_is_in_its_identities_unless_operational(group: str, option: str, monkeypatch) -> None:
    import apex.erm.spacy_backend

    # spaCy's scope resolves the model's installed version: any name stands for itself here.
    monkeypatch.setattr(apex.erm.spacy_backend, "resolve_model", lambda model="": model or "default")
    cfg = compose_config(f"{group}={option}")
    typed = load_configs(cfg)
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    before = identities(typed, flat, group)
    operational = set(REGISTRIES[group].get(option).operational)
    section = getattr(typed, group)
    for field in dataclasses.fields(section):
        if field.name == "name":
            continue
        value = changed(getattr(section, field.name))
        other = dataclasses.replace(typed, **{group: dataclasses.replace(section, **{field.name: value})})
        flat_value = flatten({group: {field.name: dataclasses.asdict(other)[group][field.name]}})
        key = f"{group}.{field.name}"
        kept = {k: v for k, v in flat.items() if k != key and not k.startswith(f"{key}.")}
        after = identities(other, {**kept, **flat_value}, group)
        moved = [before[i] != after[i] for i in (0, 1)]
        assert moved == [field.name not in operational] * 2, (group, option, field.name, moved)
