"""Typed sampler configuration: which sampler, how many negatives, how the bands and the guard are defined.

One dataclass serves every sampler (`conf/sampler/*.yaml` each list all of its keys, so any of them can be
overridden from the command line); `SamplerConfig.from_cfg` fills missing keys with the defaults below and
rejects unknown keys and bad values before anything is encoded. docs/sampling.md explains each default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

SAMPLER_NAMES = ("model_aware", "random", "hard_only", "in_batch")
BAND_KINDS = ("rank", "score", "percentile")
FALLBACK_SOURCES = ("other_band", "pool")
BACKENDS = ("exact", "faiss")


def _as_mapping(section: Any, where: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        # OmegaConf DictConfig is a Mapping; anything else (a list, a scalar) is a config mistake.
        raise ValueError(f"{where}: expected a mapping, got {type(section).__name__}")
    return {str(k): v for k, v in section.items()}


def _reject_unknown(values: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number or null, got {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    return int(value)


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

    @classmethod
    def from_cfg(cls, section: Any, where: str, default: BandConfig) -> BandConfig:
        values = _as_mapping(section, where)
        _reject_unknown(values, {"by", "low", "high"}, where)
        by = str(values.get("by", default.by))
        if by not in BAND_KINDS:
            raise ValueError(f"{where}.by must be one of {BAND_KINDS}, got {by!r}")
        # A band switched to another axis must not inherit the default's bounds, which mean something else there.
        same_axis = by == default.by
        low = _number(values.get("low", default.low if same_axis else None), f"{where}.low")
        high = _number(values.get("high", default.high if same_axis else None), f"{where}.high")
        band = cls(by=by, low=low, high=high)
        band.validate(where)
        return band

    def validate(self, where: str) -> None:
        low, high = self.low, self.high
        if low is not None and high is not None and low > high:
            raise ValueError(f"{where}: low ({low}) must be <= high ({high})")
        if self.by == "rank":
            if low is None or high is None or low != int(low) or high != int(high) or low < 1:
                raise ValueError(f"{where}: a rank window needs integer bounds 1 <= low <= high, got {low}, {high}")
        elif self.by == "percentile":
            if low is None or high is None or not 0 <= low <= 100 or not 0 <= high <= 100:
                raise ValueError(f"{where}: percentiles need both bounds in [0, 100], got {low}, {high}")
        elif low is None and high is None:
            raise ValueError(f"{where}: a score band needs low or high (cosine, in [-1, 1])")

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

    @classmethod
    def from_cfg(cls, section: Any, where: str = "sampler.guard") -> GuardConfig:
        values = _as_mapping(section, where)
        _reject_unknown(values, {f.name for f in fields(cls)}, where)
        rel_key = "max_relative_to_positive"
        rel = _number(values.get(rel_key, cls.max_relative_to_positive), f"{where}.{rel_key}")
        ceiling = _number(values.get("max_score", cls.max_score), f"{where}.max_score")
        if rel is not None and rel <= 0:
            raise ValueError(f"{where}.max_relative_to_positive must be > 0 or null, got {rel}")
        if ceiling is not None and not -1 <= ceiling <= 1:
            raise ValueError(f"{where}.max_score is a cosine in [-1, 1] or null, got {ceiling}")
        return cls(max_relative_to_positive=rel, max_score=ceiling)


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
    def from_cfg(cls, section: Any) -> SamplerConfig:
        values = _as_mapping(section, "sampler")
        _reject_unknown(values, {f.name for f in fields(cls)}, "sampler")
        name = str(values.get("name", cls.name))
        if name not in SAMPLER_NAMES:
            raise ValueError(f"sampler.name must be one of {SAMPLER_NAMES}, got {name!r}")
        fallback = values.get("fallback", cls.fallback)
        if fallback is None:
            fallback = ()
        if isinstance(fallback, str) or not isinstance(fallback, Sequence):
            raise ValueError(f"sampler.fallback must be a list drawn from {FALLBACK_SOURCES}, got {fallback!r}")
        fallback = tuple(str(s) for s in fallback)
        cfg = cls(
            name=name,
            n_hard=_count(values.get("n_hard", cls.n_hard), "sampler.n_hard"),
            n_soft=_count(values.get("n_soft", cls.n_soft), "sampler.n_soft"),
            n_random=_count(values.get("n_random", cls.n_random), "sampler.n_random"),
            candidate_k=_count(values.get("candidate_k", cls.candidate_k), "sampler.candidate_k"),
            hard=BandConfig.from_cfg(values.get("hard"), "sampler.hard", DEFAULT_HARD),
            soft=BandConfig.from_cfg(values.get("soft"), "sampler.soft", DEFAULT_SOFT),
            fallback=fallback,
            guard=GuardConfig.from_cfg(values.get("guard")),
            backend=str(values.get("backend", cls.backend)),
            query_chunk_size=_count(values.get("query_chunk_size", cls.query_chunk_size), "sampler.query_chunk_size"),
            doc_chunk_size=_count(values.get("doc_chunk_size", cls.doc_chunk_size), "sampler.doc_chunk_size"),
            histogram_bins=_count(values.get("histogram_bins", cls.histogram_bins), "sampler.histogram_bins"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        bad = [s for s in self.fallback if s not in FALLBACK_SOURCES]
        if bad or len(set(self.fallback)) != len(self.fallback):
            raise ValueError(f"sampler.fallback: distinct entries from {FALLBACK_SOURCES}, got {list(self.fallback)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"sampler.backend must be one of {BACKENDS}, got {self.backend!r}")
        for key in ("candidate_k", "query_chunk_size", "doc_chunk_size", "histogram_bins"):
            if getattr(self, key) < 1:
                raise ValueError(f"sampler.{key} must be >= 1, got {getattr(self, key)}")
        if self.name == "model_aware":
            if self.n_hard + self.n_soft < 1:
                raise ValueError("sampler model_aware: n_hard + n_soft must be >= 1")
            for band_name, band in (("hard", self.hard), ("soft", self.soft)):
                if band.by == "rank" and band.high is not None and band.high > self.candidate_k:
                    raise ValueError(
                        f"sampler.{band_name}: rank window ends at {int(band.high)}, beyond candidate_k "
                        f"({self.candidate_k}): only the top candidate_k documents are scored"
                    )
        elif self.name == "hard_only":
            if self.n_hard < 1 or self.n_soft != 0:
                raise ValueError(
                    f"sampler hard_only: needs n_hard >= 1 and n_soft = 0, got {self.n_hard}, {self.n_soft}"
                )
            if self.n_hard > self.candidate_k:
                raise ValueError(f"sampler hard_only: n_hard ({self.n_hard}) > candidate_k ({self.candidate_k})")
        elif self.name == "random" and self.n_random < 1:
            raise ValueError("sampler random: n_random must be >= 1")

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
