"""The one owner of each data stage: what determines its output (the inputs of its store key) and how to build it.

Both callers use these and nothing else: the recipe (`apex.pipeline.recipe`, through `DataStore.get_or_build`:
pinned, stored or built) and the DVC stage commands (`apex.data.prepare`, `apex.sampling.mine`, `apex.erm.build`,
through `build_into` into the stage's `outs`). So a run with the configuration params.yaml records finds the DVC
outputs pinned, and the two can never build the same output two ways. The code each output depends on is
`apex.store.keys.STAGE_CODE` (checked against dvc.yaml's deps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from apex.data import Dataset, save_splits, splits_fingerprint
from apex.data.config import DatasetConfig
from apex.erm.config import ErmConfig
from apex.erm.needed import NeededDocuments, needed_documents
from apex.model.config import ModelConfig
from apex.model.protocol import TextEncoder
from apex.sampling.config import SamplerConfig
from apex.sampling.mining import mine_negatives
from apex.store import keys
from apex.store.outputs import write_maps, write_negatives


@dataclass(frozen=True)
class StageWork:
    """One output to get: its stage (prepared, negatives, erm), its key's inputs, and `build(folder)`."""

    stage: str
    inputs: dict[str, Any]
    build: Callable[[Path], Any]


def prepared_work(splits: Mapping[str, Dataset], dataset: DatasetConfig) -> StageWork:
    """The splits, addressed by their content (a run recomputes them in seconds and compares the fingerprint)."""
    config = dataclasses.asdict(dataset)
    return StageWork(
        "prepared",
        keys.prepared_inputs(splits_fingerprint(splits)),
        lambda out: save_splits(splits, out, config=config),
    )


def negatives_work(
    splits: Mapping[str, Dataset],
    model: ModelConfig,
    sampler: SamplerConfig,
    seed: int,
    encoder: Callable[[], TextEncoder | None],
    embedding_cache: Path,
    progress: bool,
) -> StageWork:
    """Negatives of the training split, mined in the plain view (they say which documents need maps, so they come
    before the maps); `encoder()` is called only when mining happens. `build` returns the volatile stats."""
    train = splits["train"]

    def build(out: Path) -> dict[str, Any]:
        mining = mine_negatives(train.queries, train.corpus, train.qrels, encoder(), sampler,
                                cache_dir=embedding_cache, view="plain", seed=seed,
                                progress=progress)  # fmt: skip
        return write_negatives(mining, out)

    return StageWork("negatives", keys.negatives_inputs(splits_fingerprint(splits), model, sampler, seed), build)


def maps_work(
    splits: Mapping[str, Dataset],
    negatives: pd.DataFrame,
    erm: ErmConfig,
    eval_view: str,
    answer_cache: Path,
    progress: bool,
) -> tuple[StageWork, NeededDocuments]:
    """Maps of what a run reads (train: its needed documents, apex.erm.needed; val and test whole with
    eval.view=erm); `build` returns the stats per split. Also returns the needed set."""
    train = splits["train"]
    needed = needed_documents(train.corpus, train.qrels, negatives)
    mapped = {name: splits[name] for name in keys.mapped_splits(eval_view)}
    inputs = keys.maps_inputs(splits_fingerprint(splits), erm, tuple(mapped), {"train": needed.key()})

    def build(out: Path) -> dict[str, dict[str, float]]:
        return write_maps(mapped, erm, answer_cache, out, progress, {"train": needed.ids})

    return StageWork("erm", inputs, build), needed
