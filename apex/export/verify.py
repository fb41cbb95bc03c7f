"""Checks that the export is the fine-tuned network, not the base and not something near it.

1. ``probe_merge``: on fixed probe texts, the harness's own embeddings of the base (adapter disabled), of the
   fine-tuned model (adapter attached) and of the merged model. Merged must equal fine-tuned (cosine ≥ 0.9999 per
   text) and, unless the adapter is zero, differ from the base. This is what catches a merge that silently kept
   the base weights.
2. ``probe_export``: the written directory, loaded by ``SentenceTransformer`` itself, must give the fine-tuned
   embeddings (cosine ≥ 0.9999 per text) for queries and documents.
3. ``rank_check``: on the run's whole test split, the export through sentence-transformers against the harness's
   encoder with the adapter attached (both float32): per-text cosine, and rank@1 must be identical. The run's
   logged rank@1 is shown beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from apex.model.encoder import Encoder

log = logging.getLogger("apex.export")

MIN_COSINE = 0.9999
PROBES = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France, on the Seine.",
    "Which river flows through Cairo?",
    "The Nile flows north through Egypt and into the Mediterranean Sea, passing the city of Cairo.",
    "Who wrote the theory of general relativity?",
    "Albert Einstein published the general theory of relativity in 1915.",
]


class VerificationError(AssertionError):
    """The exported model does not compute what the run computed."""


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _both(encode: Callable[[list[str], str], np.ndarray]) -> np.ndarray:
    return np.concatenate([encode(PROBES, "query"), encode(PROBES, "document")])  # (2 · probes, dim)


@dataclass
class ProbeResult:
    min_cos_merged_vs_tuned: float
    min_cos_tuned_vs_base: float
    min_cos_export_vs_tuned: float | None = None


def probe_merge(
    encoder: Encoder, merge: Callable[[], torch.nn.Module], adapter_is_zero: bool
) -> tuple[Any, ProbeResult]:
    """Embed the probes with the base, the fine-tuned and the merged network; returns (merged model, result).

    ``encoder.model`` must be the ``PeftModel``; afterwards it is the merged model.
    """
    tuned = _both(encoder.encode)
    with encoder.model.disable_adapter():
        base = _both(encoder.encode)
    encoder.model = merge()
    merged = _both(encoder.encode)
    result = ProbeResult(float(_cosines(merged, tuned).min()), float(_cosines(tuned, base).min()))
    if result.min_cos_merged_vs_tuned < MIN_COSINE:
        raise VerificationError(
            f"merged model differs from the fine-tuned one: min cosine {result.min_cos_merged_vs_tuned:.6f}"
        )
    if not adapter_is_zero and np.array_equal(merged, base):
        raise VerificationError("merged model gives exactly the base model's embeddings: the adapter was not merged")
    return encoder.model, result


def probe_export(st_model: Any, encoder: Encoder, result: ProbeResult) -> None:
    """The directory as sentence-transformers loads it must reproduce the fine-tuned embeddings (fp32 both)."""
    ours = _both(lambda texts, kind: st_encode(st_model, texts, kind))
    theirs = _both(encoder.encode)
    result.min_cos_export_vs_tuned = float(_cosines(ours, theirs).min())
    if result.min_cos_export_vs_tuned < MIN_COSINE:
        raise VerificationError(
            f"SentenceTransformer(export) differs from the fine-tuned model: min cosine "
            f"{result.min_cos_export_vs_tuned:.6f} (pooling, prompts, EOS or max length do not match the harness)"
        )


def st_encode(st_model: Any, texts: list[str], kind: str, batch_size: int = 32) -> np.ndarray:
    """Encode with sentence-transformers as a user would (``encode_query`` / ``encode_document``)."""
    encode = st_model.encode_query if kind == "query" else st_model.encode_document
    out = encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


@dataclass
class TestSplit:
    """The run's test split, rebuilt from its dataset config, and how the run scored it."""

    queries: list[str]
    documents: list[str]
    split: Any  # apex.data.Dataset
    eval_cfg: Any  # apex.eval.config.EvalConfig


def load_test_split(config: Any, fingerprint: str | None) -> TestSplit:
    """The same seeded test split the run used; ``fingerprint`` (the run's ``apex.dataset_fingerprint`` tag)
    refuses a rebuilt split whose content differs."""
    from apex.data import prepare_splits, splits_fingerprint

    eval_cfg = config.eval  # config: apex.core.configs.RunConfigs
    if eval_cfg.view != "plain":
        raise VerificationError(f"the run evaluated on the {eval_cfg.view} view; only plain-text runs are re-scored")
    data_cfg = config.dataset
    if data_cfg.queries != "dataset":
        raise VerificationError("the run's queries were written by an LLM; re-scoring needs its cache, skipped")
    splits = prepare_splits(data_cfg)
    if fingerprint and not splits_fingerprint(splits).startswith(fingerprint):
        raise VerificationError(f"the rebuilt splits differ from the run's (fingerprint {fingerprint}): data changed")
    test = splits["test"]
    return TestSplit(list(test.queries["text"]), list(test.corpus["text"]), test, eval_cfg)


def score(test: TestSplit, queries: np.ndarray, documents: np.ndarray) -> dict[str, float]:
    from apex.eval import evaluate_embeddings

    split, cfg = test.split, test.eval_cfg
    result = evaluate_embeddings(
        queries, documents, split.queries, split.corpus, split.qrels, ks=cfg.ks, chunk_size=cfg.chunk_size
    )
    return {k: float(v) for k, v in result.metrics.items()}


@dataclass
class RankCheck:
    """The export against the harness on the whole test split, both in float32, and the run's logged figure.

    ``equal`` compares the export with the harness's own float32 scoring of the fine-tuned (unmerged) model. The
    run's logged rank@1 is that figure too when the run computed in float32; under bf16 autocast it can differ by a
    near-tied query or two (merged and unmerged weights round differently in bf16).
    """

    n_queries: int
    corpus_size: int
    min_cosine: float  # per text, export vs harness, over every test query and document
    rank_at_1: float  # the export, through sentence-transformers
    harness_rank_at_1: float  # the fine-tuned model through apex's encoder
    run_rank_at_1: float | None  # logged by the run
    run_precision: str
    metrics: dict[str, float]

    @property
    def equal(self) -> bool:
        return self.min_cosine >= MIN_COSINE and abs(self.rank_at_1 - self.harness_rank_at_1) < 1e-12

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "equal": self.equal, "precision": "float32"}


def harness_embeddings(encoder: Encoder, test: TestSplit) -> tuple[np.ndarray, np.ndarray]:
    size = test.eval_cfg.batch_size
    return encoder.encode(test.queries, "query", batch_size=size), encoder.encode(test.documents, "document",
                                                                                  batch_size=size)  # fmt: skip


def rank_check(
    st_model: Any, test: TestSplit, harness: tuple[np.ndarray, np.ndarray], run_rank: float | None, run_bf16: bool
) -> RankCheck:
    size = test.eval_cfg.batch_size
    ours = st_encode(st_model, test.queries, "query", size), st_encode(st_model, test.documents, "document", size)
    cosine = min(float(_cosines(a, b).min()) for a, b in zip(ours, harness, strict=True))
    metrics, reference = score(test, *ours), score(test, *harness)
    return RankCheck(
        n_queries=len(test.queries),
        corpus_size=len(test.documents),
        min_cosine=cosine,
        rank_at_1=metrics["rank_at_1"],
        harness_rank_at_1=reference["rank_at_1"],
        run_rank_at_1=run_rank,
        run_precision="bf16 autocast" if run_bf16 else "float32",
        metrics=metrics,
    )
