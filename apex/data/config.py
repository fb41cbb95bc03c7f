"""`DatasetConfig`: the `dataset` config section, validated once, up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from os import PathLike
from typing import Any

from apex.data.loaders import LOADERS
from apex.errors import InputError

QUERY_MODES = ("first", "all")
QUERY_SOURCES = ("dataset", "llm")
SPLIT_NAMES = ("train", "val", "test")
REST = "rest"

SplitSize = int | float | str  # a document count, a fraction of the documents, or "rest"


def _default_splits() -> dict[str, SplitSize]:
    return {"test": 500, "val": 200, "train": REST}


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset to load and how to split it.

    - name: a LOADERS key (squad | beir | jsonl_pairs).
    - path: file or folder; None means the bundled SQuAD v1.1 dev set (name must be squad).
    - query_mode: queries of val/test (and of `load_dataset`): `first` keeps the first query of each document
      (the paper's one-to-one setting), `all` keeps every query.
    - train_query_mode: queries of the train split (default `all`: training may use every question).
    - beir_split: which `qrels/<split>.tsv` a BEIR folder is read with.
    - query_field, document_field, query_id_field, doc_id_field: field names of a jsonl_pairs file.
    - splits: sizes in documents for train/val/test: an int count, a float fraction in (0, 1], or "rest" (all
      documents left over; at most one split). Without "rest", leftover documents are unused.
    - split_seed: seeds the document split (and the max_documents subsample).
    - max_documents: None, or first draw this many documents at random (small runs).
    - queries: `dataset` (the file's own queries) or `llm` (one LLM-written query per document, made by the recipe
      with the `erm` group's LLM backend after the split; for corpora without queries, e.g. `name: corpus`).
    """

    name: str = "squad"
    path: str | None = None
    query_mode: str = "first"
    beir_split: str = "test"
    query_field: str = "query"
    document_field: str = "document"
    query_id_field: str = "query_id"
    doc_id_field: str = "doc_id"
    splits: dict[str, SplitSize] = field(default_factory=_default_splits)
    train_query_mode: str = "all"
    split_seed: int = 0
    max_documents: int | None = None
    queries: str = "dataset"

    @classmethod
    def from_cfg(cls, mapping: Mapping[str, Any], source: str | PathLike[str] = "<config>") -> DatasetConfig:
        """Build from a plain mapping (or an OmegaConf DictConfig); errors name `source`, `dataset` and the key."""
        known = {f.name for f in fields(cls)}

        def fail(key: str, message: str) -> InputError:
            return InputError(message, file=source, record="dataset", field=key)

        if not isinstance(mapping, Mapping):
            raise InputError(f"expected a mapping, got {type(mapping).__name__}", file=source, record="dataset")
        values = dict(mapping.items())
        for key in values:
            if key not in known:
                raise fail(str(key), f"unknown key (known: {', '.join(sorted(known))})")

        def text(key: str, choices: tuple[str, ...] | None = None) -> None:
            if key not in values:
                return
            value = values[key]
            if not isinstance(value, str) or not value:
                raise fail(key, f"expected a non-empty string, got {value!r}")
            if choices is not None and value not in choices:
                raise fail(key, f"{value!r} is not one of {list(choices)}")

        text("name", tuple(LOADERS))
        text("query_mode", QUERY_MODES)
        text("train_query_mode", QUERY_MODES)
        text("queries", QUERY_SOURCES)
        for key in ("beir_split", "query_field", "document_field", "query_id_field", "doc_id_field"):
            text(key)
        if values.get("path") is not None:
            path = values["path"]
            if isinstance(path, PathLike):
                values["path"] = path = str(path)
            if not isinstance(path, str) or not path:
                raise fail("path", f"expected a path string or null, got {path!r}")
        if "split_seed" in values and not _is_int(values["split_seed"]):
            raise fail("split_seed", f"expected an integer, got {values['split_seed']!r}")
        max_docs = values.get("max_documents")
        if max_docs is not None and not (_is_int(max_docs) and max_docs >= 1):
            raise fail("max_documents", f"expected null or an integer >= 1, got {max_docs!r}")
        if "splits" in values:
            values["splits"] = _check_splits(values["splits"], fail)
        cfg = cls(**values)
        if cfg.name == "corpus" and cfg.queries != "llm":
            raise fail("queries", "name 'corpus' has no queries of its own: set queries: llm")
        if cfg.path is None and cfg.name != "squad":
            raise fail("path", f"is null, which means the bundled SQuAD set, but name is {cfg.name!r}")
        return cfg


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_splits(value: Any, fail: Any) -> dict[str, SplitSize]:
    if not isinstance(value, Mapping):
        raise fail("splits", f"expected a mapping of {list(SPLIT_NAMES)} to sizes, got {value!r}")
    sizes = dict(value.items())
    if set(sizes) != set(SPLIT_NAMES):
        raise fail("splits", f"needs exactly the keys {list(SPLIT_NAMES)}, got {sorted(map(str, sizes))}")
    for split, size in sizes.items():
        if _is_int(size):
            ok = size >= 0
        elif isinstance(size, float):
            ok = 0.0 < size <= 1.0
        else:
            ok = size == REST
        if not ok:
            raise fail(
                "splits",
                f"{split}: {size!r} is not a document count >= 0, a fraction in (0, 1] or {REST!r}",
            )
    if sum(size == REST for size in sizes.values()) > 1:
        raise fail("splits", f"at most one split may be {REST!r}")
    return {split: sizes[split] for split in SPLIT_NAMES}
