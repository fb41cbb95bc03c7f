"""The recipe's stage records: what each stage of `apex.pipeline.recipe` hands to the next (typed, no behaviour beyond
a few derived properties)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from apex.core.configs import RunConfigs
from apex.data import Dataset, splits_fingerprint
from apex.erm.needed import NeededDocuments
from apex.store.store import DataStore, Located


@dataclass(frozen=True)
class Job:
    """The `configs` stage's output: every section typed and validated, plus what MLflow records about them."""

    cfg: RunConfigs
    params: dict[str, Any]  # the resolved config, flattened: logged as MLflow params
    resolved_yaml: str
    cell: str  # hash of the settings that change what the run computes (not seed, paths, unused keys)
    label: str  # the command-line overrides that name the cell
    out_dir: Path  # Hydra's output folder of this job: adapters, plots
    store: DataStore  # prepared splits, maps, negatives: pinned by DVC or built by runs (apex/store)
    overrides: tuple[str, ...] = ()  # the job's command-line overrides as given: its MLflow run name

    @property
    def progress(self) -> bool:
        return self.cfg.job.progress

    @property
    def cache_dir(self) -> Path:
        return Path(self.cfg.paths.cache_dir)


@dataclass
class Data:
    """The `data` stage's output: one split by document, fixed across training seeds."""

    splits: dict[str, Dataset]
    prepared: Located | None = None  # where these splits are stored (pinned by DVC, or built by a run)
    query_stats: dict[str, float] = field(default_factory=dict)  # dataset.queries=llm: per split, prefixed

    @property
    def fingerprint(self) -> str:
        return splits_fingerprint(self.splits)

    @property
    def train(self) -> Dataset:
        return self.splits["train"]


@dataclass
class Views:
    """The `views` stage's output: what the model reads in training and evaluation (plain text or rendered maps)."""

    train_docs: pd.DataFrame
    val_docs: pd.DataFrame
    test_docs: pd.DataFrame
    train_queries: pd.DataFrame | None = None  # erm.apply_to=documents_and_queries: the queries' map view
    stats: dict[str, float] = field(default_factory=dict)  # ERM stats (when built), query-map stats prefixed query_
    failures: list[pd.DataFrame] = field(default_factory=list)
    maps: Located | None = None  # the maps output the views were read from
    needed: NeededDocuments | None = None  # with ERMs: the training documents mapped (train_docs holds only them)


@dataclass
class Mined:
    """The `negatives` stage's output: the negatives table and, unless in_batch, where it is stored."""

    table: pd.DataFrame
    sampler: str
    located: Located | None = None  # None for in_batch: nothing mined, nothing stored
    volatile: dict[str, Any] = field(default_factory=dict)  # filled only when mined now: cache hit, timings
