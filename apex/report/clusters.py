"""Queries that share relevant documents: the unit that carries an arm's effect can be the document.

BEIR corpora judge many queries against the same documents (`dataset.query_mode: all`). A recipe that helps or hurts
a document moves every query that needs it, so the per-query arm effects of those queries are correlated and the
query sample holds fewer independent units than it has queries. Treating them as independent understates the
query stage of the crossed test (apex.report.crossed): 300 queries in 60 documents of 5 with 70% of the arm effect
at document level gave 17% A/A false positives at α = 5%.

Two queries are *linked* when they share a relevant document (apex.eval logs every query's relevant ids in the
per-query table's `relevant_docs`). With L the Q × Q link matrix (1 on the diagonal and for every linked pair) and
b_q the query's deviation from the mean, the query stage is the cluster-robust (sandwich) variance

    V_q = max( b' L b / (Q (Q − 1)) − MS_resid / (S Q), 0 )

which is the crossed test's own query stage when no queries are linked (L = I), and the variance of cluster totals
when links form disjoint groups (one document per query). Its degrees of freedom come from the effective number of
independent query units, Q_eff = Q² / sum(L) (= Q for independent queries, = the number of groups for equal
disjoint groups). `n_clusters` counts the connected components of the link graph, printed beside the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

SEPARATOR = "\t"  # apex.eval joins a query's relevant document ids with a tab (qrels are TSV: no id holds one)


@dataclass(frozen=True)
class QueryClusters:
    """The link structure of Q queries: `links` (Q × Q sparse, 0/1, unit diagonal) and its summaries."""

    links: sparse.csr_matrix
    n_clusters: int  # connected components of the link graph
    largest: int  # queries in the largest component

    @property
    def n_queries(self) -> int:
        return int(self.links.shape[0])

    @property
    def effective_units(self) -> float:
        """Q² / sum(L): independent query units the query stage rests on (its df + 1)."""
        return float(self.n_queries**2 / self.links.sum())

    @property
    def trivial(self) -> bool:
        return self.links.nnz == self.n_queries

    @classmethod
    def independent(cls, n_queries: int) -> QueryClusters:
        return cls(sparse.identity(n_queries, format="csr"), n_queries, 1)

    @classmethod
    def from_groups(cls, groups: np.ndarray) -> QueryClusters:
        """Queries linked when they carry the same group label (one relevant document each: its id)."""
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        return cls.from_incidence(sparse.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes))))

    @classmethod
    def from_relevant(cls, relevant_docs: list[str]) -> QueryClusters:
        """From each query's tab-joined relevant document ids (apex.eval's `relevant_docs` column)."""
        rows, docs = [], []
        for q, joined in enumerate(relevant_docs):
            for doc in str(joined).split(SEPARATOR) if joined else []:
                rows.append(q)
                docs.append(doc)
        if not docs:
            return cls.independent(len(relevant_docs))
        _, codes = np.unique(np.asarray(docs), return_inverse=True)
        shape = (len(relevant_docs), int(codes.max()) + 1)
        return cls.from_incidence(sparse.csr_matrix((np.ones(len(rows)), (rows, codes)), shape=shape))

    @classmethod
    def from_incidence(cls, incidence: sparse.spmatrix) -> QueryClusters:
        """From a Q × D query–document incidence matrix (any positive entry = relevant)."""
        m = sparse.csr_matrix(incidence, dtype=np.float64)
        m.data[:] = 1.0
        links = (m @ m.T).tocsr()
        links.data[:] = 1.0
        links = (links + sparse.identity(m.shape[0], format="csr")).tocsr()
        links.data[:] = 1.0
        count, labels = csgraph.connected_components(links, directed=False)
        return cls(links, int(count), int(np.bincount(labels).max()))

    def quadratic(self, b: np.ndarray) -> np.ndarray:
        """b' L b over the last axis of b (..., Q), vectorised over the leading axes."""
        flat = np.asarray(b, dtype=np.float64).reshape(-1, self.n_queries)
        out = np.einsum("nq,nq->n", flat, (self.links @ flat.T).T)
        return out.reshape(np.shape(b)[:-1])
