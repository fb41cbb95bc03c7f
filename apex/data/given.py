"""`dataset.split: given`: a BEIR folder's own train / validation / test splits, ranked against the whole corpus.

This is how BEIR and MTEB evaluate, so a test score here is comparable with their published figures:

- train: the queries judged in `qrels/train.tsv` (required: the recipe trains on them) with those judgements;
- val:   the queries judged in `qrels/dev.tsv`; when the folder has none, a seeded carve-out of the training
  queries (`val_from_train`: a fraction or a count, drawn with `numpy.random.default_rng([split_seed, 2])` over
  the sorted query ids, so it depends only on the ids and the seed), logged;
- test:  the queries judged in `qrels/test.tsv` (required).

Every split's corpus is the *whole* corpus: documents without a judgement in a split are its distractors. A query
judged in more than one file is kept in the more held-out split only (test over val over train), counted and logged,
so no training query is ever validated or tested on. Judgements with score <= 0 are "not relevant" and dropped by
the reader (apex.data.beir).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from apex.core.errors import InputError
from apex.data.beir import beir_dataset, read_beir_folder
from apex.data.config import DatasetConfig
from apex.data.dataset import Dataset

log = logging.getLogger("apex.data")

# Separate RNG stream for the validation carve-out (0/1 are the document split and max_documents streams).
_CARVE_STREAM = 2


def carve_out(query_ids: list[str], size: int | float, seed: int) -> set[str]:
    """A seeded subset of `query_ids`: round(size * n) of them for a fraction, `size` for a count (at most n - 1,
    so training keeps at least one query)."""
    ids = sorted(set(query_ids))
    n = len(ids)
    count = math.floor(size * n + 0.5) if isinstance(size, float) else int(size)
    count = max(1, min(count, n - 1))
    order = np.random.default_rng([seed, _CARVE_STREAM]).permutation(n)
    return {ids[i] for i in order[:count]}


def _judged(rows: list[tuple[str, str, int]]) -> set[str]:
    return {q for q, _, _ in rows}


def _without(rows: list[tuple[str, str, int]], drop: set[str], split: str, other: str) -> list[tuple[str, str, int]]:
    """`rows` minus the judgements of queries in `drop` (queries that belong to a more held-out split)."""
    clash = _judged(rows) & drop
    if clash:
        log.warning("%d queries of %s are also judged in %s: kept in %s only", len(clash), split, other, other)
    return [row for row in rows if row[0] not in clash]


def given_splits(cfg: DatasetConfig) -> dict[str, Dataset]:
    """{"train", "val", "test"} from a BEIR folder's own qrels files; see the module docstring."""
    folder = Path(str(cfg.path))
    qrels_dir = folder / "qrels"
    for needed in ("train", "test"):
        if not ((qrels_dir / f"{needed}.tsv").exists() or (qrels_dir / f"{needed}.tsv.gz").exists()):
            raise InputError(
                f"dataset.split=given needs qrels/{needed}.tsv ({'training pairs' if needed == 'train' else 'the test'}"
                " queries); use dataset.split=by_document for a folder without it",
                file=qrels_dir / f"{needed}.tsv",
            )
    if cfg.max_documents is not None:
        log.warning("dataset.split=given ranks against the whole corpus: dataset.max_documents is ignored")
    corpus, queries, qrels = read_beir_folder(folder, ["train", "dev", "test"])
    test = qrels["test"]
    if "dev" in qrels:
        val = _without(qrels["dev"], _judged(test), "dev", "test")
        train = _without(_without(qrels["train"], _judged(test), "train", "test"), _judged(val), "train", "dev")
        val_source = "qrels/dev.tsv"
    else:
        train = _without(qrels["train"], _judged(test), "train", "test")
        held = carve_out(sorted(_judged(train)), cfg.val_from_train, cfg.split_seed)
        val = [row for row in train if row[0] in held]
        train = [row for row in train if row[0] not in held]
        val_source = (
            f"{len(held)} training queries carved out (val_from_train={cfg.val_from_train}, seed {cfg.split_seed})"
        )
        log.info("%s has no qrels/dev.tsv: validation = %s", folder, val_source)
    rows = {"train": train, "val": val, "test": test}
    splits = {}
    for split, judgements in rows.items():
        ds = beir_dataset(f"{cfg.name}/{split}", folder, corpus, queries, judgements, split)
        splits[split] = ds.with_titles_joined() if cfg.join_title else ds
        log.info("%s given split %s: %d queries against %d documents", folder, split, len(ds.queries), len(ds.corpus))
    log.info("validation queries from %s", val_source)
    return splits
