"""Retrieval evaluation: metrics from embeddings, and the per-query table the report's paired tests read."""

from apex.core.lazy import lazy_exports

_EXPORTS = {"EvalResult": "retrieval", "evaluate_embeddings": "retrieval", "metric_names": "retrieval"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["EvalResult", "evaluate_embeddings", "metric_names"]
