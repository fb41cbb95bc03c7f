"""Exact nearest-neighbour search over L2-normalised embeddings, in bounded memory."""

from apex.search.topk import rank_of, topk_cosine

__all__ = ["rank_of", "topk_cosine"]
