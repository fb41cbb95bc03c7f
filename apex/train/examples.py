"""Training examples: (query, its positive document, its mined negatives), and batches of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch


@dataclass(frozen=True)
class Example:
    query_id: str
    query: str
    doc_id: str
    positive: str
    negative_ids: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()


@dataclass
class Batch:
    queries: list[str]
    documents: list[str]  # the B positives first, then every mined negative of the batch
    relevant_mask: torch.Tensor  # (B, len(documents)) bool: document j is relevant to query i


def build_examples(
    queries: pd.DataFrame,
    documents: pd.DataFrame,
    qrels: pd.DataFrame,
    negatives: pd.DataFrame | None = None,
    query_texts: pd.DataFrame | None = None,
) -> list[Example]:
    """One example per relevant (query, document) pair, in qrels order.

    A query with n labelled positives (BEIR: tens, graded) yields n examples, so each epoch trains on every
    labelled pair once (rather than one positive sampled per query and epoch: with a step budget shorter than an
    epoch, as on CPU, every pair is still equally likely to be drawn). The other positives of that query are never
    negatives: ``collate`` masks every labelled positive of a query, whether it appears as another example's
    positive or as a mined negative, and the samplers exclude labelled positives from the candidates.

    ``documents`` holds the training view of the corpus (plain text or rendered maps); ``query_texts`` optionally
    replaces query texts (maps of queries, when ``erm.apply_to`` asks for it). Negatives come from the sampler's
    table (query_id, doc_id, band, score, rank), in its rank order.
    """
    doc_text = dict(zip(documents["doc_id"], documents["text"], strict=True))
    source = query_texts if query_texts is not None else queries
    query_text = dict(zip(source["query_id"], source["text"], strict=True))
    mined: dict[str, list[str]] = {}
    if negatives is not None and len(negatives):
        for query_id, group in negatives.sort_values(["query_id", "rank"], kind="stable").groupby("query_id"):
            mined[str(query_id)] = list(group["doc_id"])
    examples = []
    for query_id, doc_id, relevance in qrels[["query_id", "doc_id", "relevance"]].itertuples(index=False):
        if relevance <= 0:
            continue
        negative_ids = tuple(mined.get(query_id, ()))
        examples.append(
            Example(
                query_id=query_id,
                query=query_text[query_id],
                doc_id=doc_id,
                positive=doc_text[doc_id],
                negative_ids=negative_ids,
                negatives=tuple(doc_text[d] for d in negative_ids),
            )
        )
    return examples


def relevant_sets(qrels: pd.DataFrame) -> dict[str, frozenset[str]]:
    """query_id → every document labelled relevant to it (used to mask false negatives in the loss)."""
    positive = qrels[qrels["relevance"] > 0]
    return {q: frozenset(g["doc_id"]) for q, g in positive.groupby("query_id")}


def collate(examples: Sequence[Example], relevant: dict[str, frozenset[str]]) -> Batch:
    doc_ids = [e.doc_id for e in examples] + [d for e in examples for d in e.negative_ids]
    documents = [e.positive for e in examples] + [t for e in examples for t in e.negatives]
    mask = torch.tensor(
        [[doc in relevant.get(e.query_id, frozenset({e.doc_id})) for doc in doc_ids] for e in examples],
        dtype=torch.bool,
    )
    return Batch(queries=[e.query for e in examples], documents=documents, relevant_mask=mask)
