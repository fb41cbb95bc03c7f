"""The paper's QLoRA code path (4-bit NF4 Mistral + LoRA) in miniature, on CPU.

Guards the silent-gradient trap of bitsandbytes on AVX512-BF16 CPUs: after an eval-mode forward, backward must
still reach every LoRA layer.
"""

from __future__ import annotations

import pytest
import torch

from apex.model import ModelConfig, add_lora, load_encoder

bnb = pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def tiny_mistral(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = ModelConfig(
        name="mistral_tiny",
        source="random:mistral-tiny",
        pooling="last_token",
        query_max_length=16,
        doc_max_length=32,
        quantization="nf4",
        lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
        append_eos=True,
        cache_dir=str(tmp_path_factory.mktemp("models")),
    )
    return load_encoder(cfg)


def test_tiny_mistral_loads_4bit(tiny_mistral) -> None:
    layers = [m for m in tiny_mistral.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers, "expected 4-bit linear layers"
    assert all(m.support_avx512bf16_for_cpu is False for m in layers)
    batch = tiny_mistral.tokenize(["a b c", "a much longer text than the first one"], "document")
    last = batch["attention_mask"].sum(dim=1) - 1  # right padding: the EOS sits at the last real position
    assert batch["input_ids"][torch.arange(2), last].tolist() == [tiny_mistral.tokenizer.eos_token_id] * 2


def test_every_lora_layer_learns_after_an_eval_pass(tiny_mistral) -> None:
    cfg = tiny_mistral.cfg
    tiny_mistral.model = add_lora(
        tiny_mistral.model,
        r=4,
        alpha=8,
        dropout=0.0,
        target_modules=cfg.lora_target_modules,
        quantized=True,
        gradient_checkpointing=False,
    )
    tiny_mistral.encode(["warm-up pass in eval mode, no grad"], "document")  # the trap springs here
    tiny_mistral.model.train()
    q = tiny_mistral.embed(["what is a b c", "who wrote it"], "query")
    d = tiny_mistral.embed(["a b c is a text", "it was written by someone"], "document")
    loss = -(q * d).sum(dim=1).mean() + (q @ d.T).logsumexp(dim=1).mean()
    loss.backward()
    lora_b = [(n, p) for n, p in tiny_mistral.model.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 2 * 4  # 2 layers × 4 target modules
    dead = [n for n, p in lora_b if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"LoRA layers without gradient: {dead}"
