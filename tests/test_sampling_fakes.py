"""Hand-built embeddings and a fake encoder for the sampling tests (imported by the other test_sampling_* files)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from apex.sampling import SAMPLERS, SamplerConfig


def embed_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query and document vectors whose cosines are exactly `scores` (Q, N) (up to float32 rounding).

    Query j is the basis vector e_j; document i is sum_j scores[j, i] e_j plus a private residual axis e_{Q+i} that
    makes it unit length, so documents share no other direction. Needs sum_j scores[j, i]^2 <= 1 for every i.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    n_q, n_d = scores.shape
    residual = 1.0 - (scores**2).sum(axis=0)
    assert (residual >= 0).all(), "a document cannot have these cosines with orthogonal queries"
    queries = np.eye(n_q, n_q + n_d)
    documents = np.zeros((n_d, n_q + n_d))
    documents[:, :n_q] = scores.T
    documents[np.arange(n_d), n_q + np.arange(n_d)] = np.sqrt(residual)
    return queries.astype(np.float32), documents.astype(np.float32)


class FakeEncoder:
    """Looks texts up in fixed tables of vectors; counts `encode` calls; `identity` is whatever the test says."""

    def __init__(
        self,
        query_vectors: dict[str, np.ndarray],
        doc_vectors: dict[str, np.ndarray],
        identity: dict | None = None,
    ) -> None:
        self.vectors = {"query": query_vectors, "document": doc_vectors}
        self._identity = identity or {"source": "fake", "weights": "0", "pooling": "mean"}
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts: Sequence[str], kind: str, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        return np.stack([self.vectors[kind][t] for t in texts]).astype(np.float32)

    def identity(self) -> dict:
        return dict(self._identity)


def make_tables(
    scores: np.ndarray, positives: dict[int, Sequence[int]]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, FakeEncoder]:
    """Queries q0.., documents d0.. with cosines `scores` (Q, N), qrels from {query: [documents]}, and an encoder."""
    q_vec, d_vec = embed_scores(scores)
    queries = pd.DataFrame(
        {"query_id": [f"q{j}" for j in range(len(q_vec))], "text": [f"query {j}" for j in range(len(q_vec))]}
    )
    documents = pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(len(d_vec))], "text": [f"doc {i}" for i in range(len(d_vec))]}
    )
    qrels = pd.DataFrame(
        [(f"q{q}", f"d{d}", 1) for q, ds in positives.items() for d in ds], columns=["query_id", "doc_id", "relevance"]
    )
    encoder = FakeEncoder(
        dict(zip(queries["text"], q_vec, strict=True)), dict(zip(documents["text"], d_vec, strict=True))
    )
    return queries, documents, qrels, encoder


def random_tables(
    n_queries: int, n_docs: int, dim: int, seed: int, positives_per_query: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, FakeEncoder]:
    """Random unit vectors; each query's positives are random documents, the query pulled towards each."""
    rng = np.random.default_rng(seed)
    d_vec = rng.standard_normal((n_docs, dim)).astype(np.float32)
    q_vec = rng.standard_normal((n_queries, dim)).astype(np.float32)
    pos = {q: rng.choice(n_docs, positives_per_query, replace=False).tolist() for q in range(n_queries)}
    d_vec /= np.linalg.norm(d_vec, axis=1, keepdims=True)
    q_vec /= np.linalg.norm(q_vec, axis=1, keepdims=True)
    for q, ds in pos.items():
        q_vec[q] += 1.5 * d_vec[ds].sum(axis=0)  # every positive near the top of the ranking, as with a real model
    q_vec /= np.linalg.norm(q_vec, axis=1, keepdims=True)
    queries = pd.DataFrame(
        {"query_id": [f"q{j}" for j in range(n_queries)], "text": [f"query {j}" for j in range(n_queries)]}
    )
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": [f"doc {i}" for i in range(n_docs)]})
    qrels = pd.DataFrame(
        [(f"q{q}", f"d{d}", 1) for q, ds in pos.items() for d in ds], columns=["query_id", "doc_id", "relevance"]
    )
    encoder = FakeEncoder(
        dict(zip(queries["text"], q_vec, strict=True)), dict(zip(documents["text"], d_vec, strict=True))
    )
    return queries, documents, qrels, encoder


def config(**overrides: object) -> SamplerConfig:
    """The sampler `name` (default model_aware) with the overrides it has: tests parametrised over samplers pass
    one set of counts, and each sampler's config holds only its own keys."""
    values = {"name": "model_aware", **overrides}
    own = SAMPLERS[str(values["name"])].config.__dataclass_fields__
    return SamplerConfig.from_cfg({k: v for k, v in values.items() if k in own})


def test_embed_scores_gives_the_requested_cosines() -> None:
    scores = np.array([[0.9, -0.3, 0.0, 0.5], [0.1, 0.6, -0.7, 0.2]])
    q, d = embed_scores(scores)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(q @ d.T, scores, atol=1e-6)


def test_fake_encoder_counts_calls() -> None:
    queries, documents, _, encoder = make_tables(np.array([[0.5, 0.2]]), {0: [0]})
    encoder.encode(list(documents["text"]), "document")
    encoder.encode(list(queries["text"]), "query")
    assert (encoder.calls, encoder.texts_encoded) == (2, 3)
