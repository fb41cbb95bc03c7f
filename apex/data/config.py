"""`DatasetConfig`: the `dataset` config section, validated once, up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass
from apex.data.loaders import FORMATS

QUERY_MODES = ("first", "all")
QUERY_SOURCES = ("dataset", "llm")
SPLIT_MODES = ("by_document", "given")
SPLIT_NAMES = ("train", "val", "test")
REST = "rest"

SplitSize = int | float | str  # a document count, a fraction of the documents, or "rest"


def _default_splits() -> dict[str, SplitSize]:
    return {"test": 500, "val": 200, "train": REST}


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset to load and how to split it.

    - name: a format of apex.data.loaders.FORMATS (squad | beir | jsonl_pairs | corpus).
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
    - split: `by_document` (seeded document split above; the default) or `given` (a BEIR folder's own splits:
      qrels/train.tsv, qrels/dev.tsv or a carve-out of training queries, qrels/test.tsv; val and test are ranked
      against the whole corpus; `splits`, `max_documents` and `beir_split` do not apply; see apex.data.given).
    - val_from_train: with `split: given` and no qrels/dev.tsv, the training queries carved out (seeded by
      split_seed) for validation: a fraction in (0, 1) or a count >= 1.
    - join_title: embed "title text" (BEIR's and MTEB's convention) instead of the text alone.
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
    split: str = "by_document"
    val_from_train: int | float = 0.1
    join_title: bool = False

    @classmethod
    def from_cfg(cls, mapping: Mapping[str, Any] | None, source: str | PathLike[str] = "config") -> DatasetConfig:
        """Build from a plain mapping (or an OmegaConf DictConfig); errors name `source` and `dataset.<key>`."""
        values = dict(mapping or {}) if isinstance(mapping, Mapping | None) else mapping
        if isinstance(values, dict) and isinstance(values.get("path"), PathLike):
            values["path"] = str(values["path"])
        if isinstance(values, dict) and isinstance(values.get("splits"), Mapping):  # canonical order: train, val, test
            splits = dict(values["splits"])
            values["splits"] = {k: splits[k] for k in SPLIT_NAMES if k in splits} | splits
        return read_dataclass(cls, "dataset", values, source)

    def validate(self) -> None:
        def fail(key: str, message: str) -> ConfigError:
            return ConfigError(f"dataset.{key}", message)

        choices = {"name": tuple(FORMATS), "query_mode": QUERY_MODES, "train_query_mode": QUERY_MODES}
        for key, allowed in {**choices, "queries": QUERY_SOURCES, "split": SPLIT_MODES}.items():
            if getattr(self, key) not in allowed:
                raise fail(key, f"{getattr(self, key)!r} is not one of {list(allowed)}")
        for key in ("beir_split", "query_field", "document_field", "query_id_field", "doc_id_field"):
            if not getattr(self, key):
                raise fail(key, "expected a non-empty string")
        if self.path == "":
            raise fail("path", "expected a path string or null, got ''")
        if self.max_documents is not None and self.max_documents < 1:
            raise fail("max_documents", f"expected null or an integer >= 1, got {self.max_documents!r}")
        _check_splits(self.splits, fail)
        fmt = FORMATS[self.name]
        if not fmt.has_queries and self.queries != "llm":
            raise fail("queries", f"name {self.name!r} has no queries of its own: set queries: llm")
        defaults = DatasetConfig()
        for other in FORMATS.values():
            for key in other.keys:
                if other is not fmt and key not in fmt.keys and getattr(self, key) != getattr(defaults, key):
                    raise fail(key, f"is read by name {other.name!r} only, not by {self.name!r}")
        carve = self.val_from_train
        if not ((isinstance(carve, int) and carve >= 1) or (isinstance(carve, float) and 0.0 < carve < 1.0)):
            raise fail("val_from_train", f"expected a fraction in (0, 1) or a count >= 1, got {carve!r}")
        if self.split == "given" and not fmt.given_splits:
            given = " | ".join(f.name for f in FORMATS.values() if f.given_splits)
            raise fail("split", f"'given' needs a dataset with its own splits (name: {given}), not {self.name!r}")
        if self.path is None and self.name != "squad":
            raise fail("path", f"is null, which means the bundled SQuAD set, but name is {self.name!r}")


def _check_splits(sizes: dict[str, SplitSize], fail: Any) -> None:
    if set(sizes) != set(SPLIT_NAMES):
        raise fail("splits", f"needs exactly the keys {list(SPLIT_NAMES)}, got {sorted(map(str, sizes))}")
    for split, size in sizes.items():
        if isinstance(size, int):
            ok = size >= 0
        elif isinstance(size, float):
            ok = 0.0 < size <= 1.0
        else:
            ok = size == REST
        if not ok:
            raise fail("splits", f"{split}: {size!r} is not a document count >= 0, a fraction in (0, 1] or {REST!r}")
    if sum(size == REST for size in sizes.values()) > 1:
        raise fail("splits", f"at most one split may be {REST!r}")
