"""The loader registry (config name -> function) and `load_dataset`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
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


LOADERS: dict[str, Loader] = {"squad": _squad, "beir": _beir, "jsonl_pairs": _jsonl_pairs, "corpus": _corpus}


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load `cfg.path` (None: the bundled SQuAD dev set, sha256-checked) with the loader `cfg.name`, then apply
    `cfg.query_mode`. A dataset with no documents or no queries is an error: nothing downstream could use it."""
    path = verified_bundled_squad() if cfg.path is None else Path(cfg.path)
    ds = LOADERS[cfg.name](path, cfg)
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
