"""Base models: load offline, pool, add LoRA, quantise."""

from apex.core.lazy import lazy_exports

_EXPORTS = {
    "Encoder": "encoder",
    "LazyEncoder": "encoder",
    "ModelConfig": "config",
    "add_lora": "lora",
    "load_encoder": "encoder",
    "pick_device": "encoder",
    "save_adapter": "lora",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["Encoder", "LazyEncoder", "ModelConfig", "add_lora", "load_encoder", "pick_device", "save_adapter"]
