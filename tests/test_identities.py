"""Pinned identities: the cell hash and the store keys (prepared, negatives, maps) of every shipped config option
(and every ERM backend with every sampler) are what tests/data/identities.json records (identity_pins.py explains
the stubbed parts). An identity that moves splits cells or orphans stored outputs: change it only on purpose, say
why in the commit, and regenerate the file with `python tests/identity_pins.py > tests/data/identities.json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from identity_pins import compute

PINNED = json.loads((Path(__file__).parent / "data" / "identities.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def current(monkeypatch_module=None):
    from apex.store import keys

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
