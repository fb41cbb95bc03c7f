"""Base models: load offline, pool, add LoRA, quantise."""

from apex.model.config import ModelConfig
from apex.model.encoder import Encoder, load_encoder, pick_device
from apex.model.lora import add_lora, save_adapter

__all__ = ["Encoder", "ModelConfig", "add_lora", "load_encoder", "pick_device", "save_adapter"]
