"""Merge a stop point's LoRA adapter into the base model: W' = W + (alpha / r) · B A, for every adapted layer.

The base is loaded exactly as the run loaded it (apex.model.loading), so the merged weights are the weights the
run trained against. For QLoRA that is the 4-bit NF4 base: it is dequantised first (to float32) and the adapter
is merged into that full-precision copy, never re-quantised. A 4-bit merge target would round B A away again, and
merging into the original (never quantised) checkpoint would give a network the adapter was not trained on.

The trap this module guards against: a merge that looks right but silently saves the *base* model (adapter keys
that do not match the model's module names, a merged copy that is never the one saved). ``attach_adapter``
checks that every tensor of the adapter file is in the model with identical values before anything is merged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import PreTrainedModel

from apex.model.config import ModelConfig
from apex.model.loading import LoadedModel, load_base_model
from apex.model.lora import peft_deprecations_silenced

log = logging.getLogger("apex.export")


class MergeError(RuntimeError):
    """The adapter does not fit the base model, or merging did not change what it should have."""


def export_model_config(cfg: ModelConfig) -> ModelConfig:
    """The run's model config as the export loads it: on CPU in float32, with the checkpoint's own dropout.

    Dropout is reset because the run may have zeroed the frozen backbone's dropout for speed; the exported config
    should carry the checkpoint's value for anyone who fine-tunes it further (it changes nothing at inference).
    """
    return dataclasses.replace(cfg, dropout=None, bf16="false")


def load_base(cfg: ModelConfig) -> LoadedModel:
    """The run's base model on CPU, dequantised to float32 when the run trained it in 4 bits."""
    loaded = load_base_model(export_model_config(cfg), torch.device("cpu"))
    if cfg.quantization != "none":
        loaded.model = dequantize(loaded.model)
    loaded.model = loaded.model.float().eval()
    return loaded


def dequantize(model: PreTrainedModel) -> PreTrainedModel:
    """Every bitsandbytes 4-bit linear layer becomes a plain float32 ``nn.Linear`` holding the dequantised values
    (transformers' own ``dequantize``, which also drops the quantisation config, so the model saves unquantised)."""
    import bitsandbytes as bnb

    quantised = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    if quantised == 0 or getattr(model, "hf_quantizer", None) is None:
        raise MergeError("model.quantization is nf4 but the loaded base has no 4-bit layers")
    model = model.dequantize(dtype=torch.float32)
    left = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    if left or getattr(model.config, "quantization_config", None) is not None:
        raise MergeError(f"dequantising left {left} 4-bit layers or a quantization_config in the model")
    log.info("dequantised %d 4-bit linear layers to float32", quantised)
    return model


def adapter_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    path = adapter_dir / "adapter_model.safetensors"
    if not path.exists():
        raise MergeError(f"{adapter_dir} holds no adapter_model.safetensors (files: {sorted(os.listdir(adapter_dir))})")
    return load_file(str(path))


def attach_adapter(model: PreTrainedModel, adapter_dir: Path) -> PeftModel:
    """The base wrapped with the saved adapter; fails unless every saved tensor landed in the model unchanged.

    peft stores ``base_model.model.<module>.lora_A.weight``; in the live model the same tensor is
    ``base_model.model.<module>.lora_A.default.weight``.
    """
    with peft_deprecations_silenced():
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    live = {name: tensor for name, tensor in peft_model.state_dict().items() if "lora_" in name}
    saved = adapter_weights(adapter_dir)
    missing, differing = [], []
    for key, tensor in saved.items():
        live_key = key.replace(".weight", ".default.weight")
        if live_key not in live:
            missing.append(key)
        elif not torch.equal(live[live_key].float(), tensor.float()):
            differing.append(key)
    if missing or differing or not saved:
        raise MergeError(
            f"adapter {adapter_dir} does not fit the base model: {len(missing)} of {len(saved)} tensors have no "
            f"module (first: {missing[:3]}), {len(differing)} loaded with other values (first: {differing[:3]})"
        )
    if all(not torch.any(t != 0) for k, t in saved.items() if "lora_B" in k):
        log.warning(
            "every lora_B of %s is zero: this adapter is the base model (was it saved before training?)", adapter_dir
        )
    return peft_model


def merge(peft_model: PeftModel) -> PreTrainedModel:
    """W + (alpha / r) B A into every adapted layer; returns the plain transformers model (no peft wrappers)."""
    merged = peft_model.merge_and_unload(progressbar=False, safe_merge=True)
    leftovers = [name for name, _ in merged.named_modules() if "lora_" in name]
    if leftovers:
        raise MergeError(f"merge left LoRA modules in the model: {leftovers[:3]}")
    return merged
