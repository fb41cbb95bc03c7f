"""docs/extending.md, checked: a toy sampler and a toy ERM backend added from tests/ (tests/toy_components.py, a
module holding both, and tests/conf/{sampler,erm}/toy.yaml, on Hydra's search path) compose, validate, run
`experiment=smoke`, and put their own keys, and only them, into the cell hash and the store keys; their
operational keys go into neither."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import toy_components  # registers the toy sampler and the toy ERM backend
from apex_cli import TINY_RUN
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from apex.core.configs import cell_of, load_configs
from apex.core.errors import ConfigError
from apex.store import keys
from apex.tracking.params import flatten

REPO = Path(__file__).resolve().parents[1]
TOYS = ["sampler=toy", "erm=toy", f"hydra.searchpath=[file://{REPO / 'tests' / 'conf'}]"]


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[*TOYS, *overrides])


def identities(*overrides: str) -> dict[str, str]:
    cfg = composed(*overrides)
    typed = load_configs(cfg)
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    return {
        "cell": cell_of(flat, typed),
        "negatives": keys.digest(keys.negatives_inputs("fp", typed.model, typed.sampler, 0)),
        "maps": keys.digest(keys.maps_inputs("fp", typed.erm, ("train",))),
    }


def test_the_toys_compose_with_their_own_keys_only_and_validate() -> None:
    cfg = composed()
    assert set(cfg.sampler) == {f.name for f in dataclasses.fields(toy_components.ToySamplerConfig)}
    assert set(cfg.erm) == {f.name for f in dataclasses.fields(toy_components.ToyErmConfig)}
    assert "n_hard" not in cfg.sampler and "concurrency" not in cfg.erm
    typed = load_configs(cfg)
    assert isinstance(typed.sampler, toy_components.ToySamplerConfig) and typed.sampler.n_easy == 2
    assert isinstance(typed.erm, toy_components.ToyErmConfig) and typed.erm.n_entities == 3
    with pytest.raises(ConfigError, match=r"sampler\.n_easy"):
        load_configs(composed("sampler.n_easy=0"))
    with pytest.raises(ConfigError, match=r"erm\.n_entities"):
        load_configs(composed("erm.n_entities=0"))


@pytest.mark.parametrize(
    ("override", "moves"),
    [
        ("sampler.n_easy=3", {"cell", "negatives"}),  # its own key: in the cell and the negatives' key
        ("sampler.histogram_bins=20", {"cell", "negatives"}),  # a key it shares with every mining sampler
        ("sampler.rows_per_block=7", set()),  # operational: in no identity
        ("erm.n_entities=5", {"cell", "maps"}),
        ("erm.min_chars=5", {"cell", "maps"}),
        ("erm.workers=4", set()),  # operational
    ],
)
def test_own_keys_and_only_them_reach_the_identities(override: str, moves: set[str]) -> None:
    base, changed = identities(), identities(override)
    assert {part for part in base if base[part] != changed[part]} == moves


def test_the_store_keys_hold_the_toys_identity_keys_exactly() -> None:
    typed = load_configs(composed())
    sampler = keys.negatives_inputs("fp", typed.model, typed.sampler, 0)["sampler"]
    assert set(sampler) == {f.name for f in dataclasses.fields(typed.sampler)} - {"rows_per_block"}
    erm = keys.maps_inputs("fp", typed.erm, ("train",))["erm"]
    assert set(erm["settings"]) == {f.name for f in dataclasses.fields(typed.erm)} - {"workers"}
    assert erm["scope"] == {"kind": "map", "backend": "toy", "model": "capitalised-words", "prompt_version": "toy/v1+3"}


def test_the_toys_run_the_smoke_experiment(tmp_path: Path) -> None:
    import apex.pipeline.recipe

    cfg = composed(
        *TINY_RUN,
        "eval.on_val=false",
        "torch_threads=1",
        f"paths.experiments={tmp_path}",
        f"paths.data={tmp_path}/data",
    )
    summary = apex.pipeline.recipe.run(cfg, output_dir=str(tmp_path / "out"))
    assert summary.extra["data store"] == "splits built, maps built, negatives built"
    assert summary.extra["negatives"].split()[1] == "(toy),"
    n_negatives = int(summary.extra["negatives"].split()[0])
    assert n_negatives > 0 and n_negatives % 2 == 0  # n_easy = 2 per training query
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(summary.run_id)
    params = run.data.params
    assert params["sampler.name"] == "toy" and params["sampler.n_easy"] == "2" and "sampler.n_hard" not in params
    assert params["erm.name"] == "toy" and params["erm.n_entities"] == "3" and "erm.concurrency" not in params
    assert run.data.tags["apex.cell"] == identities(*TINY_RUN, "eval.on_val=false")["cell"]
    assert run.data.metrics["erm_view_mapped"] > 0  # documents trained on in the toy's map view
