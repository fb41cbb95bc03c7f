"""Base models: load offline, pool, add LoRA, quantise."""

import logging

from apex.core.lazy import lazy_exports

# bitsandbytes' CPU backend, imported by peft whether or not a model is quantised, warns on AVX512-BF16 CPUs that
# the optional `kernels` package (which fetches code from a hub at run time) is missing: it concerns no apex run
# (4-bit layers work without it) and no user can act on it. Silenced for every entry point that loads a model.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

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
