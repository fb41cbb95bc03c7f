"""apex: reproduce, measure and extend APEX-Embedding (arXiv 2410.18105) with honest statistics."""

__version__ = "0.1.0"
