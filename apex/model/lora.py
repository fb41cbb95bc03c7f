"""LoRA adapters (peft) on the base model; QLoRA when the base is 4-bit."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
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
    with peft_deprecations_silenced():
        return get_peft_model(model, config)


@contextlib.contextmanager
def peft_deprecations_silenced() -> Iterator[None]:
    """peft reads transformers' deprecated `is_gradient_checkpointing` when it wraps a model: not ours to fix, and
    a FutureWarning per run is noise a user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def save_adapter(model: PeftModel, directory: Path, base_model_id: str | None = None) -> Path:
    """Write only the adapter weights and config (a few MB), not the base.

    ``base_model_id`` replaces the base path peft records (a local cache or venv folder, meaningless elsewhere)
    by the base model's public id, and peft's empty README template by a short note on how to load it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    if base_model_id is not None:
        config_path = directory / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_model_id
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        (directory / "README.md").write_text(ADAPTER_README.format(base=base_model_id, r=config.get("r"),
                                                                   alpha=config.get("lora_alpha")))  # fmt: skip
    return directory


ADAPTER_README = """# LoRA adapter (apex)

A LoRA adapter (r={r}, alpha={alpha}) for the embedding backbone `{base}`, saved by apex at one stop point of
training. It holds only the adapter weights; the backbone has no task head (`AutoModel`, not a causal LM).

```python
from peft import PeftModel
from transformers import AutoModel
model = PeftModel.from_pretrained(AutoModel.from_pretrained("{base}"), "path/to/this/folder")
```

Pooling, prefixes, max lengths and normalisation are not part of an adapter: for a ready-to-use embedding model,
export the run (`python -m apex.export RUN_ID --step N`), which writes a sentence-transformers model.
"""
