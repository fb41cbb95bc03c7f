"""Contrastive LoRA training with stop points."""

from apex.train.config import LoraSettings, TrainConfig
from apex.train.examples import Example, build_examples, relevant_sets
from apex.train.loop import TrainResult, train
from apex.train.loss import InfoNCELoss

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
