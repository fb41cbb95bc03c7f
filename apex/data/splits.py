"""Seeded train/val/test splits by document, with no query leaking across splits.

The split is drawn over documents, not queries: a test document's questions must never be seen in training, and
the corpus each split is searched against is exactly its own documents. Procedure:

1. Sort the doc_ids (so the result depends on the set of ids, not on file order or query mode) and permute them
   with `numpy.random.default_rng(seed)`: the same seed gives the same split in any process.
2. Cut the permutation in the order test, val, train: test takes the first n_test ids, val the next n_val, train
   the next n_train (or all the rest). Taking test first keeps the test set fixed when only train's size changes.
3. A query goes to the split of its first relevant document (in qrels order) that lies in any split; its qrels
   naming documents of other splits are dropped (counted, logged). Without that, a query whose relevant documents
   straddle train and test would be trained on and tested with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping

import numpy as np

from apex.data.config import REST, SPLIT_NAMES, DatasetConfig, SplitSize
from apex.data.dataset import Dataset
from apex.data.given import given_splits
from apex.data.loaders import load_dataset

log = logging.getLogger("apex.data")

CUT_ORDER = ("test", "val", "train")
# Separate stream for the max_documents draw, so it does not replay the split's permutation.
_SUBSAMPLE_STREAM = 1


def resolve_sizes(sizes: Mapping[str, SplitSize], n_documents: int) -> dict[str, int]:
    """Document counts per split. A fraction f gives floor(f * n + 0.5); "rest" gets what the others leave."""
    counts: dict[str, int] = {}
    for split in CUT_ORDER:
        size = sizes[split]
        if size == REST:
            continue
        counts[split] = math.floor(size * n_documents + 0.5) if isinstance(size, float) else int(size)
    taken = sum(counts.values())
    if taken > n_documents:
        raise ValueError(f"splits {dict(sizes)} ask for {taken} documents but the dataset has {n_documents}")
    for split in CUT_ORDER:
        if sizes[split] == REST:
            counts[split] = n_documents - taken
    return {split: counts[split] for split in SPLIT_NAMES}


def _permuted_doc_ids(ds: Dataset, seed: int | list[int]) -> np.ndarray:
    ids = np.array(sorted(ds.corpus["doc_id"].tolist()), dtype=object)
    return np.random.default_rng(seed).permutation(ids)


def subsample_documents(ds: Dataset, max_documents: int, seed: int) -> Dataset:
    """A seeded random subset of `max_documents` documents (all of them when there are no more)."""
    if max_documents >= len(ds.corpus):
        return ds
    keep = _permuted_doc_ids(ds, [seed, _SUBSAMPLE_STREAM])[:max_documents]
    sub = ds.subset(keep.tolist())
    log.info(
        "%s: kept a random %d of %d documents (seed %d), %d of %d queries",
        ds.name,
        len(sub.corpus),
        len(ds.corpus),
        seed,
        len(sub.queries),
        len(ds.queries),
    )
    return sub


def split_by_document(ds: Dataset, sizes: Mapping[str, SplitSize], seed: int) -> dict[str, Dataset]:
    """{"train", "val", "test"} -> Dataset, disjoint by document; see the module docstring."""
    counts = resolve_sizes(sizes, len(ds.corpus))
    order = _permuted_doc_ids(ds, seed)
    doc_split: dict[str, str] = {}
    start = 0
    for split in CUT_ORDER:
        for doc_id in order[start : start + counts[split]]:
            doc_split[doc_id] = split
        start += counts[split]
    unused = len(order) - start

    qrels = ds.qrels.assign(split=ds.qrels["doc_id"].map(doc_split))
    in_a_split = qrels["split"].notna()
    home = qrels[in_a_split].groupby("query_id", sort=False)["split"].first()
    qrels["home"] = qrels["query_id"].map(home)
    leaked = in_a_split & qrels["home"].notna() & (qrels["split"] != qrels["home"])
    if leaked.any():
        log.warning(
            "%s: %d qrels name a document in another split than their query's first relevant document: "
            "dropped (%d queries affected)",
            ds.name,
            int(leaked.sum()),
            qrels.loc[leaked, "query_id"].nunique(),
        )
    if unused:
        lost = ds.queries["query_id"].isin(qrels["query_id"]) & ~ds.queries["query_id"].isin(home.index)
        log.info(
            "%s: %d documents are in no split (no 'rest' split): %d qrels naming them and %d queries relevant "
            "only to them dropped",
            ds.name,
            unused,
            int((~in_a_split).sum()),
            int(lost.sum()),
        )

    result: dict[str, Dataset] = {}
    for split in SPLIT_NAMES:
        split_qrels = qrels[(qrels["split"] == split) & (qrels["home"] == split)]
        corpus = ds.corpus[ds.corpus["doc_id"].map(doc_split) == split]
        queries = ds.queries[ds.queries["query_id"].isin(split_qrels["query_id"])]
        result[split] = Dataset(
            name=f"{ds.name}/{split}",
            corpus=corpus.reset_index(drop=True),
            queries=queries.reset_index(drop=True),
            qrels=split_qrels[list(ds.qrels.columns)].reset_index(drop=True),
            source=ds.source,
        )
        log.info("%s split %s: %d documents, %d queries", ds.name, split, len(corpus), len(queries))
    return result


def prepare_splits(cfg: DatasetConfig) -> dict[str, Dataset]:
    """Load every query, optionally subsample documents, split by document, then apply the per-split query mode
    (train: `train_query_mode`; val and test: `query_mode`). `split: given` takes the folder's own splits instead
    (apex.data.given)."""
    if cfg.split == "given":
        splits = given_splits(cfg)
    else:
        ds = load_dataset(dataclasses.replace(cfg, query_mode="all"))
        if cfg.max_documents is not None:
            ds = subsample_documents(ds, cfg.max_documents, cfg.split_seed)
        splits = split_by_document(ds, cfg.splits, cfg.split_seed)
    modes = {"train": cfg.train_query_mode, "val": cfg.query_mode, "test": cfg.query_mode}
    return {split: part.with_query_mode(modes[split]) for split, part in splits.items()}


def splits_fingerprint(splits: Mapping[str, Dataset]) -> str:
    """One sha256 over the splits' names and fingerprints (the `apex.dataset_fingerprint` of a run)."""
    digest = hashlib.sha256()
    for split in SPLIT_NAMES:
        digest.update(f"{split}:{splits[split].fingerprint()}\n".encode())
    return digest.hexdigest()
