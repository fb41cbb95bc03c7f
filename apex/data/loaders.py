"""The dataset formats (`dataset.name` -> its record: loader and facts) and `load_dataset`.

A format's record says which `DatasetConfig` keys only it reads (`keys`: set under another format they are an error,
never silently ignored), whether the file brings its own queries and its own splits. Those keys stay in
`DatasetConfig` (and so in every dataset's cell, with their defaults) so the cells of existing runs do not move.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apex.core.errors import InputError
from apex.data.beir import load_beir, load_corpus_only
from apex.data.bundled import BUNDLED_SOURCE, verified_bundled_squad
from apex.data.dataset import Dataset
from apex.data.jsonl_pairs import load_jsonl_pairs
from apex.data.squad import load_squad

if TYPE_CHECKING:  # config imports this module for the registry's names
    from apex.data.config import DatasetConfig

log = logging.getLogger("apex.data")

Loader = Callable[[Path, "DatasetConfig"], Dataset]


def _squad(path: Path, cfg: DatasetConfig) -> Dataset:
    return load_squad(path, name=cfg.name)


def _beir(path: Path, cfg: DatasetConfig) -> Dataset:
    return load_beir(path, split=cfg.beir_split, name=cfg.name)


def _jsonl_pairs(path: Path, cfg: DatasetConfig) -> Dataset:
    return load_jsonl_pairs(
        path,
        query_field=cfg.query_field,
        document_field=cfg.document_field,
        query_id_field=cfg.query_id_field,
        doc_id_field=cfg.doc_id_field,
        name=cfg.name,
    )


def _corpus(path: Path, cfg: DatasetConfig) -> Dataset:
    return load_corpus_only(path, name=cfg.name)


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    load: Loader
    keys: tuple[str, ...] = ()  # DatasetConfig keys only this format reads
    has_queries: bool = True  # False: a corpus alone (dataset.queries=llm writes one query per document)
    given_splits: bool = False  # brings its own train/dev/test splits (dataset.split=given)


_JSONL_KEYS = ("query_field", "document_field", "query_id_field", "doc_id_field")
FORMATS: dict[str, DatasetFormat] = {
    f.name: f
    for f in (
        DatasetFormat("squad", _squad),
        DatasetFormat("beir", _beir, ("beir_split",), given_splits=True),
        DatasetFormat("jsonl_pairs", _jsonl_pairs, _JSONL_KEYS),
        DatasetFormat("corpus", _corpus, has_queries=False),
    )
}
LOADERS: dict[str, Loader] = {name: f.load for name, f in FORMATS.items()}


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load `cfg.path` (None: the bundled SQuAD dev set, sha256-checked) with the loader `cfg.name`, then apply
    `cfg.query_mode`. A dataset with no documents or no queries is an error: nothing downstream could use it."""
    path = verified_bundled_squad() if cfg.path is None else Path(cfg.path)
    ds = FORMATS[cfg.name].load(path, cfg)
    if cfg.path is None:
        # A portable label instead of this machine's install path, so outputs are byte-identical everywhere.
        ds = dataclasses.replace(ds, source=BUNDLED_SOURCE)
    if ds.corpus.empty:
        raise InputError("holds no documents", file=path)
    if cfg.queries == "llm":
        # The dataset's own queries (if any) are replaced by LLM-written ones after the split (apex.pipeline.recipe).
        ds = dataclasses.replace(ds, queries=ds.queries.iloc[:0], qrels=ds.qrels.iloc[:0])
    elif ds.queries.empty:
        raise InputError("holds no queries with a relevant document (dataset.queries=llm writes some)", file=path)
    log.info("loaded %s from %s: %d documents, %d queries, %d qrels", cfg.name, path, *ds.counts().values())
    if cfg.join_title:
        ds = ds.with_titles_joined()
    return ds.with_query_mode(cfg.query_mode)
