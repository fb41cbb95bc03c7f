"""Retrieval evaluation: metrics from embeddings, and the per-query table the report's paired tests read."""

from apex.eval.retrieval import EvalResult, evaluate_embeddings, metric_names

__all__ = ["EvalResult", "evaluate_embeddings", "metric_names"]
