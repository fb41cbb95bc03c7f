"""Typed sampler configuration: the parts samplers share; each sampler's own config lives with it.

Each sampler (apex/sampling/samplers/<name>.py) registers its config class, holding only the keys it reads; its
defaults are the Hydra node `sampler/base_<name>` its conf/sampler/<name>.yaml starts from.
`SamplerConfig.from_cfg` reads a section as the config of the sampler its `name` selects, rejecting unknown keys
and bad values (one `ConfigError` naming the key) before anything is encoded. docs/sampling.md explains each
default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import as_mapping

BAND_KINDS = ("rank", "score", "percentile")
FALLBACK_SOURCES = ("other_band", "pool")
BACKENDS = ("exact", "faiss")


def _band_values(section: Any, key: str, default: BandConfig) -> dict[str, Any]:
    """A band's keys with the default's bounds filled in, unless the band switched axis (bounds then mean else)."""
    values = as_mapping(section, key)
    by = values.get("by", default.by)
    if by == default.by:
        values = {"low": default.low, "high": default.high, **values}
    return {"by": by, "low": None, "high": None, **values}


@dataclass(frozen=True)
class BandConfig:
    """One band of candidates, as an inclusive interval [low, high] on one axis (`by`).

    - ``rank``: 1-based position in the base model's ranking of the whole corpus (labelled positives included,
      ties broken by document order); both bounds required, 1 <= low <= high <= candidate_k.
    - ``score``: cosine similarity of query and document under the base model; null = unbounded on that side.
    - ``percentile``: percentiles (0-100) of the scores of all eligible candidates of all queries, turned into
      cosine thresholds once per run, so the band means the same thing for models whose cosines differ in scale.
    """

    by: str
    low: float | None
    high: float | None

    def validate(self, where: str = "sampler.band") -> None:
        if self.by not in BAND_KINDS:
            raise ConfigError(f"{where}.by", f"{self.by!r} is not one of {list(BAND_KINDS)}")
        low, high = self.low, self.high
        if low is not None and high is not None and low > high:
            raise ConfigError(where, f"low ({low}) must be <= high ({high})")
        if self.by == "rank":
            if low is None or high is None or low != int(low) or high != int(high) or low < 1:
                raise ConfigError(where, f"a rank window needs integer bounds 1 <= low <= high, got {low}, {high}")
        elif self.by == "percentile":
            if low is None or high is None or not 0 <= low <= 100 or not 0 <= high <= 100:
                raise ConfigError(where, f"percentiles need both bounds in [0, 100], got {low}, {high}")
        elif low is None and high is None:
            raise ConfigError(where, "a score band needs low or high (cosine, in [-1, 1])")

    def as_dict(self) -> dict[str, Any]:
        if self.by == "rank":  # validated integers
            return {"by": self.by, "low": int(self.low), "high": int(self.high)}  # type: ignore[arg-type]
        return {"by": self.by, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class GuardConfig:
    """False-negative guard: drop candidates that score too close to the query's labelled positive.

    A candidate is removed if score > p - |p| (1 - max_relative_to_positive), p = the lowest score of the query's
    labelled positives (= 0.95 p for p >= 0 with the default), or if score > max_score. null disables a rule.
    """

    max_relative_to_positive: float | None = 0.95
    max_score: float | None = None

    def validate(self) -> None:
        rel, ceiling = self.max_relative_to_positive, self.max_score
        if rel is not None and rel <= 0:
            raise ConfigError("sampler.guard.max_relative_to_positive", f"must be > 0 or null, got {rel}")
        if ceiling is not None and not -1 <= ceiling <= 1:
            raise ConfigError("sampler.guard.max_score", f"is a cosine in [-1, 1] or null, got {ceiling}")


DEFAULT_HARD = BandConfig(by="rank", low=1, high=10)
DEFAULT_SOFT = BandConfig(by="rank", low=30, high=100)


@dataclass(frozen=True)
class SamplerConfig:
    """The `sampler` config group: `name` selects a registered sampler (apex.sampling.registry.SAMPLERS), whose
    config class (a subclass) holds its keys."""

    name: str = "model_aware"

    @classmethod
    def from_cfg(cls, section: Any, key: str = "sampler") -> SamplerConfig:
        from apex.sampling.registry import SAMPLERS

        default = cls.__dataclass_fields__["name"].default
        return SAMPLERS.read(section, key, default)  # type: ignore[no-any-return]

    def validate(self) -> None:
        """Rules that types cannot say; subclasses extend it."""

    def as_dict(self) -> dict[str, Any]:
        """Every key, JSON-ready (what the sampler's stats record)."""
        from apex.core.registry import identity_value

        return {f.name: identity_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class MinedConfig(SamplerConfig):
    """What every sampler that mines from the base model's vectors reads."""

    guard: GuardConfig = field(default_factory=GuardConfig)
    query_chunk_size: int = 1024
    doc_chunk_size: int = 16384
    histogram_bins: int = 40

    def validate(self) -> None:
        self.guard.validate()
        for key in ("query_chunk_size", "doc_chunk_size", "histogram_bins"):
            if getattr(self, key) < 1:
                raise ConfigError(f"sampler.{key}", f"must be >= 1, got {getattr(self, key)}")

    def check_count(self, key: str, minimum: int = 0) -> None:
        if getattr(self, key) < minimum:
            raise ConfigError(f"sampler.{key}", f"must be an integer >= {minimum}, got {getattr(self, key)}")


@dataclass(frozen=True)
class PoolConfig(MinedConfig):
    """Samplers that pick from each query's top-`candidate_k` pool (apex.sampling.candidates)."""

    candidate_k: int = 100
    backend: str = "exact"

    def validate(self) -> None:
        super().validate()
        if self.backend not in BACKENDS:
            raise ConfigError("sampler.backend", f"must be one of {BACKENDS}, got {self.backend!r}")
        if self.candidate_k < 1:
            raise ConfigError("sampler.candidate_k", f"must be >= 1, got {self.candidate_k}")


def band_values(values: dict[str, Any], key: str) -> dict[str, Any]:
    """`hard`/`soft` sections with the defaults' bounds filled in (unless the band switched axis)."""
    values = dict(values)
    for band, default in (("hard", DEFAULT_HARD), ("soft", DEFAULT_SOFT)):
        if band in values:
            values[band] = _band_values(values[band], f"{key}.{band}", default)
    return values
