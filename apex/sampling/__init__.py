"""Model-aware contrastive sampling: base embeddings (cached) → candidate pool → hard/soft bands → negatives."""

from apex.sampling.cache import BaseEmbeddingCache, BaseEmbeddings
from apex.sampling.config import BandConfig, GuardConfig, SamplerConfig
from apex.sampling.mining import NEGATIVE_COLUMNS, MiningResult, mine_negatives
from apex.sampling.outputs import write_outputs
from apex.sampling.protocol import EncoderProtocol
from apex.sampling.registry import SAMPLERS

__all__ = [
    "NEGATIVE_COLUMNS",
    "SAMPLERS",
    "BandConfig",
    "BaseEmbeddingCache",
    "BaseEmbeddings",
    "EncoderProtocol",
    "GuardConfig",
    "MiningResult",
    "SamplerConfig",
    "mine_negatives",
    "write_outputs",
]
