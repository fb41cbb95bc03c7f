"""SamplerConfig: the shipped YAML options load, defaults agree with the docs' table, bad values fail up front."""

from __future__ import annotations

import pytest
from hydra_conf import compose_config

from apex.core.errors import ConfigError
from apex.sampling import SAMPLERS, BandConfig, GuardConfig, SamplerConfig
from apex.sampling.samplers.model_aware import ModelAwareConfig


@pytest.mark.parametrize("option", ["model_aware", "random", "hard_only", "in_batch"])
def test_shipped_options_load_and_name_a_registered_sampler(option) -> None:
    section = compose_config(f"sampler={option}").sampler
    cfg = SamplerConfig.from_cfg(section)
    assert cfg.name == option and option in SAMPLERS
    # every key of the sampler's own config composed (so each can be overridden), and no other sampler's
    assert set(section) == set(SAMPLERS[option].config.__dataclass_fields__)


def test_model_aware_yaml_equals_the_documented_defaults() -> None:
    assert SamplerConfig.from_cfg(compose_config("sampler=model_aware").sampler) == ModelAwareConfig()
    cfg = ModelAwareConfig()
    assert (cfg.n_hard, cfg.n_soft, cfg.candidate_k) == (2, 2, 100)
    assert cfg.hard == BandConfig("rank", 1, 10) and cfg.soft == BandConfig("rank", 30, 100)
    assert cfg.guard == GuardConfig(0.95, None) and cfg.fallback == ("other_band", "pool")


def test_switching_a_band_axis_does_not_inherit_the_old_bounds() -> None:
    cfg = SamplerConfig.from_cfg({"hard": {"by": "score", "low": 0.5}})
    assert cfg.hard == BandConfig("score", 0.5, None)
    with pytest.raises(ValueError, match="percentiles need both bounds"):
        SamplerConfig.from_cfg({"soft": {"by": "percentile", "low": 10}})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"name": "nope"}, "sampler.name: 'nope' is not one of"),
        ({"n_hardd": 2}, "sampler.n_hardd: unknown key"),
        ({"n_hard": -1}, "sampler.n_hard: must be a non-negative integer"),
        ({"n_hard": 0, "n_soft": 0}, "n_hard \\+ n_soft must be >= 1"),
        ({"hard": {"by": "rank", "low": 5, "high": 2}}, "low \\(5.0\\) must be <= high"),
        ({"hard": {"by": "rank", "low": 0, "high": 2}}, "integer bounds 1 <= low"),
        ({"soft": {"by": "rank", "low": 30, "high": 200}}, "beyond candidate_k"),
        ({"hard": {"by": "percentile", "low": 90, "high": 101}}, "in \\[0, 100\\]"),
        ({"hard": {"by": "score"}}, "needs low or high"),
        ({"hard": {"by": "quantile", "low": 1, "high": 2}}, "sampler.hard.by: 'quantile' is not one of"),
        ({"fallback": ["pool", "elsewhere"]}, "sampler.fallback"),
        ({"fallback": "pool"}, "sampler.fallback: expected a list"),
        ({"guard": {"max_relative_to_positive": 0}}, "must be > 0 or null"),
        ({"guard": {"max_score": 1.5}}, "cosine in \\[-1, 1\\]"),
        ({"guard": {"margin": 0.1}}, "sampler.guard.margin: unknown key"),
        ({"backend": "annoy"}, "sampler.backend: must be one of"),
        ({"name": "hard_only", "n_hard": 4, "n_soft": 2}, "sampler.n_soft: unknown key"),
        ({"name": "hard_only", "n_hard": 101}, "n_hard <= candidate_k"),
        ({"name": "random", "n_random": 0}, "n_random: must be an integer >= 1"),
        ({"name": "random", "candidate_k": 10}, "sampler.candidate_k: unknown key"),
        ({"query_chunk_size": 0}, "query_chunk_size: must be >= 1"),
    ],
)
def test_bad_values_fail_with_a_clear_message(section, message) -> None:
    with pytest.raises(ConfigError, match=message):
        SamplerConfig.from_cfg(section)


def test_accepts_omegaconf_sections() -> None:
    from omegaconf import OmegaConf

    section = OmegaConf.create(
        {"name": "model_aware", "fallback": ["pool"], "hard": {"by": "rank", "low": 2, "high": 9}}
    )
    cfg = SamplerConfig.from_cfg(section)
    assert cfg.fallback == ("pool",) and cfg.hard == BandConfig("rank", 2, 9)
    assert SamplerConfig.from_cfg(cfg.as_dict()) == cfg  # as_dict round-trips (what the stats record)
