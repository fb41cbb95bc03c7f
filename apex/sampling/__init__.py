"""Model-aware contrastive sampling: base embeddings (cached) → candidate pool → hard/soft bands → negatives."""

from apex.core.lazy import lazy_exports

_EXPORTS = {
    "NEGATIVE_COLUMNS": "mining",
    "SAMPLERS": "registry",
    "BandConfig": "config",
    "BaseEmbeddingCache": "cache",
    "BaseEmbeddings": "cache",
    "GuardConfig": "config",
    "MiningResult": "mining",
    "SamplerConfig": "config",
    "mine_negatives": "mining",
    "write_outputs": "outputs",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "NEGATIVE_COLUMNS",
    "SAMPLERS",
    "BandConfig",
    "BaseEmbeddingCache",
    "BaseEmbeddings",
    "GuardConfig",
    "MiningResult",
    "SamplerConfig",
    "mine_negatives",
    "write_outputs",
]
