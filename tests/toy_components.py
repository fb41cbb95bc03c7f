"""A toy sampler and a toy ERM backend, added from outside the package the way docs/extending.md says: this module
(config + implementation + registration) and one YAML each (tests/conf/sampler/toy.yaml, tests/conf/erm/toy.yaml).
Importing this module registers both."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from apex.core.errors import ConfigError
from apex.erm.cache import Outcome, Scope
from apex.erm.config import MapsConfig
from apex.erm.registry import ErmBackend, register_backend
from apex.erm.schema import EntityMap
from apex.sampling.config import MinedConfig
from apex.sampling.registry import Sampler, register_sampler
from apex.sampling.selection import ChosenNegatives, SamplerInputs


@dataclass(frozen=True)
class ToySamplerConfig(MinedConfig):
    """Each query's `n_easy` lowest-scoring documents: the easiest negatives there are."""

    name: str = "toy"
    n_easy: int = 2
    rows_per_block: int = 64  # operational: how many queries are scored at once

    def validate(self) -> None:
        super().validate()
        self.check_count("n_easy", 1)


def sample_easy(inputs: SamplerInputs, cfg: ToySamplerConfig, rng: np.random.Generator, progress: bool) -> Any:
    del rng, progress  # deterministic
    n_docs = inputs.documents.shape[0]
    rows, docs, scores, ranks = [], [], [], []
    for start in range(0, inputs.queries.shape[0], cfg.rows_per_block):
        block = inputs.queries[start : start + cfg.rows_per_block] @ inputs.documents.T  # (b, N)
        for offset, row in enumerate(block):
            q = start + offset
            order = np.argsort(-row, kind="stable")  # rank 1 first
            rank_of_doc = np.empty(n_docs, dtype=np.int64)
            rank_of_doc[order] = np.arange(1, n_docs + 1)
            allowed = order[~np.isin(order, inputs.positives.of(q))]
            easy = np.sort(allowed[::-1][: cfg.n_easy])
            rows += [q] * easy.size
            docs += easy.tolist()
            scores += row[easy].tolist()
            ranks += rank_of_doc[easy].tolist()
    order = np.lexsort((np.asarray(ranks), np.asarray(rows)))
    score = np.asarray(scores, dtype=np.float32)[order]
    return ChosenNegatives(
        query_index=np.asarray(rows, dtype=np.int64)[order],
        doc_index=np.asarray(docs, dtype=np.int64)[order],
        band=np.full(len(rows), "easy", dtype=object),
        score=score,
        rank=np.asarray(ranks, dtype=np.int64)[order],
        band_scores={"easy": score},
    )


@dataclass(frozen=True)
class ToyErmConfig(MapsConfig):
    """A map of the first `n_entities` capitalised words of a document (no relations)."""

    name: str = "toy"
    n_entities: int = 3
    workers: int = 1  # operational: how many texts at once

    def validate(self) -> None:
        super().validate()
        if self.n_entities < 1:
            raise ConfigError("erm.n_entities", f"must be >= 1, got {self.n_entities}")


def toy_scope(task: Any, cfg: ToyErmConfig) -> Scope:
    return Scope(task.kind, "toy", "capitalised-words", f"toy/v1+{cfg.n_entities}")


def toy_answer(items: list, task: Any, cfg: ToyErmConfig, cache: Any, scope: Scope, progress: bool) -> Any:
    from apex.erm.llm import Counters

    done = []
    for item in items:
        names = list(dict.fromkeys(re.findall(r"\b[A-Z][a-z]+\b", item.text)))[: cfg.n_entities] or ["Nothing"]
        erm = EntityMap.from_data({"entities": [{"name": n, "type": "word", "attributes": []} for n in names]})
        done.append(Outcome(item.key, item.text_sha256, True, erm.to_json()))
    cache.put(scope, done)
    return Counters()


SAMPLER = register_sampler(Sampler("toy", ToySamplerConfig, sample_easy, operational=("rows_per_block",)))
BACKEND = register_backend(ErmBackend("toy", ToyErmConfig, toy_answer, toy_scope, operational=("workers",)))
