"""Which training documents need a map: the ones training reads, no more.

Training reads a document's text only as a labelled positive of a training query (its own example, and an
in-batch negative of the other examples in its batch) or as a mined negative of some query. Every other document
of the training corpus is never read by training, so mapping it would only cost (an LLM bills every document):

    needed = {d : (q, d) in the training qrels with relevance > 0}  ∪  {d : (q, d) in the negatives table}

This is why the negatives are mined before the maps (in the plain view: the base model ranks the documents as
they are; see docs/beir.md "ERMs at corpus scale"). With `dataset.split=given` the training corpus is the whole
corpus, so on a large corpus most documents are neither; with SQuAD `by_document` every training paragraph has a
question, so every training document is a positive and the set is the whole training corpus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from apex.core.errors import InputError


@dataclass(frozen=True)
class NeededDocuments:
    """The documents to map, in corpus order, and where they come from (positives first: a document that is both a
    positive and a mined negative counts as a positive)."""

    ids: tuple[str, ...]
    positives: int  # training positives
    negatives: int  # mined negatives that are not training positives
    corpus: int  # documents in the training corpus

    def line(self) -> str:
        return (
            f"maps: {len(self.ids)} of {self.corpus} corpus documents needed: {self.positives} training positives, "
            f"{self.negatives} mined negatives"
        )

    def key(self) -> dict[str, object]:
        """What the maps output records of this set: its size and a digest of the sorted ids."""
        digest = hashlib.sha256("\n".join(sorted(self.ids)).encode("utf-8")).hexdigest()
        return {"documents": len(self.ids), "ids_sha256": digest}

    def metrics(self) -> dict[str, float]:
        return {
            "erm_needed_documents": float(len(self.ids)),
            "erm_needed_positives": float(self.positives),
            "erm_needed_negatives": float(self.negatives),
            "erm_corpus_documents": float(self.corpus),
        }


def needed_documents(corpus: pd.DataFrame, qrels: pd.DataFrame, negatives: pd.DataFrame) -> NeededDocuments:
    """The training positives and mined negatives of `corpus` (see the module docstring).

    `qrels`: query_id, doc_id, relevance (rows <= 0 are not positives); `negatives`: the sampler's table (doc_id
    read; empty for in_batch). A document named by either but missing from `corpus` is an InputError: the
    negatives would belong to other splits.
    """
    in_corpus = set(corpus["doc_id"])
    positive = set(qrels.loc[qrels["relevance"] > 0, "doc_id"])
    mined = set(negatives["doc_id"]) if len(negatives) else set()
    for name, ids in (("qrels", positive), ("negatives", mined)):
        unknown = sorted(ids - in_corpus)
        if unknown:
            raise InputError(
                f"{len(unknown)} documents are not in the training corpus", file=name, record=unknown[0], field="doc_id"
            )
    wanted = positive | mined
    ids = tuple(d for d in corpus["doc_id"] if d in wanted)
    return NeededDocuments(ids, len(positive), len(mined - positive), len(corpus))
