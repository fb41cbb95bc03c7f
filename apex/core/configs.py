"""The job's configuration: one typed schema per Hydra group, registered as each group's base node.

Each group's schema is a frozen dataclass in its stage's package (DatasetConfig, ModelConfig, ...); its defaults are
the only copy of the default values. `register()` stores them in Hydra's ConfigStore as `<group>/base`, and every
option in conf/<group>/ starts with `defaults: [base]` and states only what it changes. In a group whose `name:`
selects a component (erm, sampler: `REGISTRIES`), each component has its own schema, stored as `base_<name>`.
`load_configs` turns a composed config into `RunConfigs`, validating every section up front; every failure is one
`ConfigError` naming the key. The `paths` group (conf/paths/default.yaml) holds every location.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from apex.core.errors import ConfigError
from apex.core.schema import defaults_of, read_dataclass
from apex.data.config import DatasetConfig
from apex.erm.config import ErmConfig
from apex.erm.registry import ERM_BACKENDS
from apex.eval.config import EvalConfig
from apex.model.config import ModelConfig
from apex.report.config import SweepReportConfig
from apex.sampling.config import SamplerConfig
from apex.sampling.registry import SAMPLERS
from apex.store.config import StoreConfig
from apex.tracking.config import TrackingConfig
from apex.tracking.params import cell_hash
from apex.train.config import TrainConfig

SCHEMAS: dict[str, type] = {
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "training": TrainConfig,
    "eval": EvalConfig,
    "erm": ErmConfig,
    "sampler": SamplerConfig,
    "tracking": TrackingConfig,
    "store": StoreConfig,
    "report": SweepReportConfig,
}
# Groups whose `name:` selects a registered component: the section is read as that component's own config.
REGISTRIES = {"erm": ERM_BACKENDS, "sampler": SAMPLERS}
# Keys of the schemas that are locations: set from the `paths` group, never composed into a group.
LOCATIONS = {"model": ("cache_dir",)}


@dataclass(frozen=True)
class PathsConfig:
    """Every location a run reads or writes (conf/paths/default.yaml); relative paths are relative to the cwd."""

    experiments: str
    cache_dir: str  # reusable caches: base embeddings, ERM answers, converted models
    data: str  # the DVC store: <data>/prepared, <data>/erm, <data>/negatives (+ content-addressed variants)
    dvc_lock: str  # the dvc.lock a run logs as its provenance
    runs: str
    sweeps: str

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            if not getattr(self, f.name):
                raise ConfigError(f"paths.{f.name}", "must be a non-empty path")


@dataclass(frozen=True)
class JobConfig:
    """Top-level keys of conf/config.yaml."""

    seed: int = 0
    run_name: str | None = None  # MLflow run name; None = "<cell label> seed=<seed>"
    progress: bool = True
    torch_threads: int | None = None  # None = torch's default (all cores)
    # Multirun only: the sweep parent run (id or name) whose FINISHED jobs are not launched again. A schema key, so a
    # typo of it fails; `+resume=` (its spelling before) still works (apex.core.precheck rewrites it).
    resume: str | None = None

    def validate(self) -> None:
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError("torch_threads", f"must be >= 1 or null, got {self.torch_threads}")
        if not 0 <= self.seed < 2**32:  # numpy's and torch's seeds are unsigned 32-bit
            raise ConfigError("seed", f"must be an integer in [0, 2**32), got {self.seed}")


@dataclass(frozen=True)
class RunConfigs:
    """Every section of a composed job config, typed and validated."""

    job: JobConfig
    paths: PathsConfig
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainConfig
    eval: EvalConfig
    erm: ErmConfig
    sampler: SamplerConfig
    tracking: TrackingConfig
    store: StoreConfig
    report: SweepReportConfig

    def validate(self) -> None:
        """Rules that join two sections: checked with the rest, before any data are read."""
        if self.dataset.queries == "llm" and not self.erm.is_llm:
            raise ConfigError(
                "dataset.queries",
                f"'llm' needs an LLM erm backend (erm=gpt4o or erm=openai_compatible), not erm={self.erm.name}",
            )
        if self.eval.view == "erm" and self.erm.name == "none":
            raise ConfigError("eval.view", "'erm' needs an ERM backend (erm=spacy, gpt4o, ...), got erm=none")


def operational_keys(cfg: RunConfigs) -> set[str]:
    """Flat keys the selected components call operational (erm.concurrency under an LLM backend): in no identity."""
    return {
        f"{group}.{key}"
        for group, registry in REGISTRIES.items()
        for key in registry.get(getattr(cfg, group).name).operational
    }


def cell_of(flat: dict[str, Any], cfg: RunConfigs) -> str:
    """The job's cell: the hash of its flattened settings minus seed, locations and its components' operational keys
    (a component's section holds only its own keys, so nothing else needs leaving out). The recipe tags every run
    with it; the sweeper's `+resume=` computes it for jobs before launching them."""
    skip = operational_keys(cfg)
    return cell_hash({k: v for k, v in flat.items() if not any(k == u or k.startswith(f"{u}.") for u in skip)})


def register() -> None:
    """Store each schema's defaults as `<group>/base`, and each registered component's as `<group>/base_<name>`
    (idempotent; called before Hydra composes)."""
    store = ConfigStore.instance()
    for registry in REGISTRIES.values():
        registry.discover()  # each component stores its own node, `<group>/base_<name>`
    for group, schema in SCHEMAS.items():
        if group in REGISTRIES:
            continue
        node = defaults_of(schema)
        for key in LOCATIONS.get(group, ()):
            node.pop(key, None)
        store.store(group=group, name="base", node=node)
    store.store(name="job_base", node=defaults_of(JobConfig))


def load_configs(cfg: DictConfig | dict[str, Any]) -> RunConfigs:
    """Validate every section of a composed config (resolved first) into `RunConfigs`."""
    resolved = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    missing = [name for name in ("paths", *SCHEMAS) if name not in resolved]
    if missing:
        raise ConfigError(missing[0], "section is missing from the composed config")
    paths = read_dataclass(PathsConfig, "paths", resolved["paths"])
    sections = {name: dict(resolved[name] or {}) for name in SCHEMAS}
    for group, keys in LOCATIONS.items():
        for key in keys:
            if key in sections[group]:
                raise ConfigError(f"{group}.{key}", "is a location: set it in the paths group")
    typed = {name: schema.from_cfg(sections[name]) for name, schema in SCHEMAS.items()}
    typed["model"] = dataclasses.replace(typed["model"], cache_dir=f"{paths.cache_dir}/models")
    job_keys = {f.name: resolved[f.name] for f in dataclasses.fields(JobConfig) if f.name in resolved}
    configs = RunConfigs(job=read_dataclass(JobConfig, "", job_keys), paths=paths, **typed)
    configs.validate()
    return configs


register()
