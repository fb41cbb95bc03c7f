"""Typed sampler configuration: which sampler, how many negatives, how the bands and the guard are defined.

One dataclass serves every sampler: its defaults are the `sampler/base` node every conf/sampler/*.yaml starts from
(so any key can be overridden from the command line); `SamplerConfig.from_cfg` fills missing keys with the defaults
below and rejects unknown keys and bad values (one `ConfigError` naming the key) before anything is encoded.
docs/sampling.md explains each default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import as_mapping, read_dataclass

SAMPLER_NAMES = ("model_aware", "random", "hard_only", "in_batch")
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
    """The `sampler` config group.

    Which keys each sampler reads: model_aware: all; hard_only: n_hard (n_soft must be 0), candidate_k, guard;
    random: n_random, guard; in_batch: none (no encoding at all).
    """

    name: str = "model_aware"
    n_hard: int = 2
    n_soft: int = 2
    n_random: int = 4
    candidate_k: int = 100
    hard: BandConfig = DEFAULT_HARD
    soft: BandConfig = DEFAULT_SOFT
    fallback: tuple[str, ...] = ("other_band", "pool")
    guard: GuardConfig = field(default_factory=GuardConfig)
    backend: str = "exact"
    query_chunk_size: int = 1024
    doc_chunk_size: int = 16384
    histogram_bins: int = 40

    @classmethod
    def from_cfg(cls, section: Any, key: str = "sampler") -> SamplerConfig:
        values = as_mapping(section, key)
        for band, default in (("hard", DEFAULT_HARD), ("soft", DEFAULT_SOFT)):
            if band in values:
                values[band] = _band_values(values[band], f"{key}.{band}", default)
        if values.get("fallback", ()) is None:
            values["fallback"] = ()
        return read_dataclass(cls, key, values)

    def validate(self) -> None:
        if self.name not in SAMPLER_NAMES:
            raise ConfigError("sampler.name", f"{self.name!r} is not one of {list(SAMPLER_NAMES)}")
        for key in ("n_hard", "n_soft", "n_random"):
            if getattr(self, key) < 0:
                raise ConfigError(f"sampler.{key}", f"must be a non-negative integer, got {getattr(self, key)}")
        self.hard.validate("sampler.hard")
        self.soft.validate("sampler.soft")
        self.guard.validate()
        bad = [s for s in self.fallback if s not in FALLBACK_SOURCES]
        if bad or len(set(self.fallback)) != len(self.fallback):
            raise ConfigError(
                "sampler.fallback", f"distinct entries from {FALLBACK_SOURCES}, got {list(self.fallback)}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError("sampler.backend", f"must be one of {BACKENDS}, got {self.backend!r}")
        for key in ("candidate_k", "query_chunk_size", "doc_chunk_size", "histogram_bins"):
            if getattr(self, key) < 1:
                raise ConfigError(f"sampler.{key}", f"must be >= 1, got {getattr(self, key)}")
        if self.name == "model_aware":
            if self.n_hard + self.n_soft < 1:
                raise ConfigError("sampler.name", "model_aware: n_hard + n_soft must be >= 1")
            for band_name, band in (("hard", self.hard), ("soft", self.soft)):
                if band.by == "rank" and band.high is not None and band.high > self.candidate_k:
                    raise ConfigError(
                        f"sampler.{band_name}",
                        f"rank window ends at {int(band.high)}, beyond candidate_k "
                        f"({self.candidate_k}): only the top candidate_k documents are scored",
                    )
        elif self.name == "hard_only":
            if self.n_hard < 1 or self.n_soft != 0:
                raise ConfigError(
                    "sampler.name", f"hard_only: needs n_hard >= 1 and n_soft = 0, got {self.n_hard}, {self.n_soft}"
                )
            if self.n_hard > self.candidate_k:
                raise ConfigError(
                    "sampler.name", f"hard_only: n_hard ({self.n_hard}) > candidate_k ({self.candidate_k})"
                )
        elif self.name == "random" and self.n_random < 1:
            raise ConfigError("sampler.name", "random: n_random must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_hard": self.n_hard,
            "n_soft": self.n_soft,
            "n_random": self.n_random,
            "candidate_k": self.candidate_k,
            "hard": self.hard.as_dict(),
            "soft": self.soft.as_dict(),
            "fallback": list(self.fallback),
            "guard": {
                "max_relative_to_positive": self.guard.max_relative_to_positive,
                "max_score": self.guard.max_score,
            },
            "backend": self.backend,
            "query_chunk_size": self.query_chunk_size,
            "doc_chunk_size": self.doc_chunk_size,
            "histogram_bins": self.histogram_bins,
        }
