"""Contrastive LoRA training with stop points."""

from apex.core.lazy import lazy_exports

_EXPORTS = {
    "Example": "examples",
    "InfoNCELoss": "loss",
    "LoraSettings": "config",
    "TrainConfig": "config",
    "TrainResult": "loop",
    "build_examples": "examples",
    "relevant_sets": "examples",
    "train": "loop",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "Example",
    "InfoNCELoss",
    "LoraSettings",
    "TrainConfig",
    "TrainResult",
    "build_examples",
    "relevant_sets",
    "train",
]
