"""Typed, validated options of the report (`python -m apex.report`).

The report reads a finished sweep from MLflow and writes statistics; its options are few, so they come from the
command line (argparse) rather than Hydra. `ReportConfig.from_cfg(mapping)` validates everything up front so a bad
value fails before any run is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass

DEFAULT_TRACKING_URI = "sqlite:///experiments/mlflow.db"
COMMITTED_ROOT = "reports"  # the tracked folder `--commit` writes to
# The per-query metrics the report reads (apex.eval's names); any of them can be the primary metric (report.metric).
REPORT_METRICS: tuple[str, ...] = ("rank_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10")
# The two hyper-parameters of the heatmap.
LR_PARAM = "training.lr"
LORA_R_PARAM = "training.lora.r"

# Params that never decide which cell is whose baseline: the seed, where things are tracked or written, and paths.
# Matched with fnmatch against the flattened param key (e.g. "tracking.uri", "data.cache_dir").
# The first five and report.* mirror apex.tracking.params.NON_CELL_PREFIXES (what does not define a cell).
DEFAULT_IGNORE_PARAMS: tuple[str, ...] = (
    "seed",
    "tracking.*",
    "hydra.*",
    "run_name",
    "progress",
    "torch_threads",
    "paths.*",
    "store.*",
    "report.*",
    "arm",  # a label of erm + sampler (apex.tracking.names.ARM_PARAM), not a setting of its own
    "*_dir",
    "*_path",
    "*.dir",
    "*.path",
    "*_uri",
    "*.uri",
)


@dataclass(frozen=True)
class SweepReportConfig:
    """The `report` group of a run's config: how the report will judge the sweep, fixed before the test set is read.

    - stop: the stop fraction (0, 1] every comparison is judged at; None = the trained stop point with the best
      validation figure of both arms' shared seeds, cross-fitted over seeds (apex.report.stops). Every run logs it
      as the param `report.stop`, and `python -m apex.report` uses it unless `--stop` overrides it.
    - metric: the primary metric every verdict, interval, MDE and plan is computed on (one of REPORT_METRICS);
      None = the dataset's own: nDCG@10 for a BEIR folder (`dataset.name=beir`, graded judgements: what BEIR and
      MTEB rank by), rank@1 otherwise (SQuAD's one gold paragraph per question: the paper's metric). Logged as the
      param `report.metric`; `--metric` overrides it (and the report says so).
    """

    stop: float | None = None
    metric: str | None = None

    def validate(self) -> None:
        if self.stop is not None and not 0.0 < self.stop <= 1.0:
            raise ConfigError("report.stop", f"must be a trained stop fraction in (0, 1] or null, got {self.stop}")
        if self.metric is not None and self.metric not in REPORT_METRICS:
            raise ConfigError(
                "report.metric", f"must be one of {', '.join(REPORT_METRICS)} or null, got {self.metric!r}"
            )

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "report") -> SweepReportConfig:
        return read_dataclass(cls, key, section)


class ReportConfigError(ValueError):
    """A report option has a bad value; the message names the option."""


@dataclass(frozen=True)
class BaselineSpec:
    """Which param values make a cell a baseline, e.g. ``erm.name=none,sampler.name=in_batch``.

    `groups` are the config groups the spec names (the part of each key before the first dot): a cell and its
    baseline may differ anywhere inside those groups and must agree on every other (non-ignored) param.
    """

    values: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> BaselineSpec:
        pairs: list[tuple[str, str]] = []
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ReportConfigError(f"baseline: expected key=value items separated by commas, got {item!r}")
            pairs.append((key.strip(), value.strip()))
        if not pairs:
            raise ReportConfigError("baseline: empty spec; give e.g. 'erm.name=none'")
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ReportConfigError(f"baseline: a key is given twice in {text!r}")
        return cls(values=tuple(pairs))

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(key.split(".", 1)[0] for key, _ in self.values)

    def matches(self, params: Mapping[str, str]) -> bool:
        """True when `params` holds every value of the spec (string equality, as MLflow stores params)."""
        return all(params.get(key) == value for key, value in self.values)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.values)


@dataclass(frozen=True)
class ReportConfig:
    """Everything the report needs; see docs/report.md for how each option changes the output."""

    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = "apex"
    sweep: str | None = None  # parent run id or run name; None = latest sweep parent in `experiment`
    filter: str | None = None  # MLflow filter string selecting job runs directly (instead of a sweep parent)
    name: str | None = None  # report name (folder under out_root); default: the sweep parent's run name
    baseline: BaselineSpec = field(default_factory=lambda: BaselineSpec.parse("erm.name=none,sampler.name=in_batch"))
    ignore_params: tuple[str, ...] = DEFAULT_IGNORE_PARAMS
    out_root: str = "experiments/reports"  # git-ignored: a report never dirties the tracked tree
    commit: bool = False  # write under reports/ (tracked) instead, to commit the report with the code
    stop: float | None = None  # report.stop: the stop fraction fixed in advance; None = cross-fitted validation choice
    metric: str | None = None  # report.metric: the primary metric; None = the runs' report.metric, else the dataset's
    n_permutations: int = 10000
    confidence: float = 0.95
    alpha: float = 0.05
    power: float = 0.8
    seed: int = 0
    log_to_mlflow: bool = True
    figures: bool = True

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ReportConfig:
        """Build and validate from a plain mapping (argparse namespace vars, a YAML section, a test dict)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ReportConfigError(f"unknown report option(s): {', '.join(unknown)}")
        values = {k: v for k, v in cfg.items() if v is not None}
        if "tracking_uri" not in values:
            values["tracking_uri"] = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        if isinstance(values.get("baseline"), str):
            values["baseline"] = BaselineSpec.parse(values["baseline"])
        if isinstance(values.get("ignore_params"), str):
            values["ignore_params"] = tuple(p.strip() for p in values["ignore_params"].split(",") if p.strip())
        elif "ignore_params" in values:
            values["ignore_params"] = tuple(values["ignore_params"])
        if "confidence" not in values:  # the tables' intervals at the test's level unless asked otherwise
            values["confidence"] = 1.0 - float(values.get("alpha", 0.05))
        if values.get("commit") and "out_root" not in values:
            values["out_root"] = COMMITTED_ROOT
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if not isinstance(self.baseline, BaselineSpec):
            raise ReportConfigError("baseline: must be a 'key=value,...' string")
        if self.sweep is not None and self.filter is not None:
            raise ReportConfigError("sweep and filter: give one or the other, not both")
        if not self.tracking_uri:
            raise ReportConfigError("tracking_uri: empty")
        if not self.experiment:
            raise ReportConfigError("experiment: empty")
        if self.filter is not None and not self.filter.strip():
            raise ReportConfigError("filter: empty string")
        if self.name is not None and (not self.name.strip() or "/" in self.name or self.name in {".", ".."}):
            raise ReportConfigError(f"name: {self.name!r} is not a usable folder name")
        permutations = self.n_permutations
        if not isinstance(permutations, int) or isinstance(permutations, bool) or permutations < 100:
            raise ReportConfigError(f"n_permutations: must be an integer >= 100, got {self.n_permutations!r}")
        if self.stop is not None and (
            isinstance(self.stop, bool) or not isinstance(self.stop, int | float) or not 0.0 < float(self.stop) <= 1.0
        ):
            raise ReportConfigError(f"stop: must be a trained stop fraction in (0, 1], got {self.stop!r}")
        for option, value in (("confidence", self.confidence), ("alpha", self.alpha), ("power", self.power)):
            if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
                raise ReportConfigError(f"{option}: must lie strictly between 0 and 1, got {value!r}")
        if self.metric is not None and self.metric not in REPORT_METRICS:
            raise ReportConfigError(f"metric: must be one of {', '.join(REPORT_METRICS)}, got {self.metric!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ReportConfigError(f"seed: must be a non-negative integer, got {self.seed!r}")
        if not all(isinstance(p, str) and p for p in self.ignore_params):
            raise ReportConfigError("ignore_params: must be non-empty glob strings")
