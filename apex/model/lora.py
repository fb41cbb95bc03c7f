"""LoRA adapters (peft) on the base model; QLoRA when the base is 4-bit."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training


def add_lora(
    model: torch.nn.Module,
    *,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: tuple[str, ...],
    quantized: bool,
    gradient_checkpointing: bool,
) -> PeftModel:
    """Freeze the base, add rank-``r`` adapters: W x + (alpha / r) · B A x, with B = 0 at the start.

    B starting at zero means step 0 of training *is* the base model, so the zero-shot score and the fine-tuned
    scores are measured on one and the same network.
    """
    if r < 1 or alpha <= 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA needs r >= 1, alpha > 0, 0 <= dropout < 1; got r={r} alpha={alpha} dropout={dropout}")
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none")
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`: not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def save_adapter(model: PeftModel, directory: Path) -> Path:
    """Write only the adapter weights and config (a few MB), not the base."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    return directory
