"""InfoNCE against a hand computation, masking of known positives, batch assembly."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from apex.train import InfoNCELoss, TrainConfig, build_examples, relevant_sets
from apex.train.examples import collate


def test_infonce_matches_hand_computation() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])  # two positives, one mined negative
    mask = torch.tensor([[True, False, False], [False, True, False]])
    tau = 0.5
    loss = InfoNCELoss(tau)(q, d, mask)
    # query 0: logits 1.2, 0, 2;  query 1: logits 1.6, 2, 0
    l0 = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(0) + math.exp(2)))
    l1 = -math.log(math.exp(2) / (math.exp(1.6) + math.exp(2) + math.exp(0)))
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_known_positive_is_masked_not_pushed_away() -> None:
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both queries share the same document
    shared = torch.tensor([[True, True], [True, True]])
    separate = torch.eye(2, dtype=torch.bool)
    assert InfoNCELoss(0.05)(q, d, shared).item() == pytest.approx(0.0, abs=1e-6)
    assert InfoNCELoss(0.05)(q, d, separate).item() == pytest.approx(math.log(2), rel=1e-5)


def test_examples_and_mask_from_tables() -> None:
    queries = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "text": ["a?", "b?", "c?"]})
    docs = pd.DataFrame({"doc_id": ["d1", "d2"], "text": ["A", "B"]})
    qrels = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "doc_id": ["d1", "d1", "d2"], "relevance": [1, 1, 1]})
    negatives = pd.DataFrame({"query_id": ["q1"], "doc_id": ["d2"], "band": ["hard"], "score": [0.5], "rank": [1]})
    examples = build_examples(queries, docs, qrels, negatives)
    assert [e.negative_ids for e in examples] == [("d2",), (), ()]
    batch = collate(examples, relevant_sets(qrels))
    assert batch.documents == ["A", "A", "B", "B"]
    expected = torch.tensor(
        [[True, True, False, False], [True, True, False, False], [False, False, True, True]], dtype=torch.bool
    )
    assert torch.equal(batch.relevant_mask, expected)


def test_stop_steps_and_budget() -> None:
    cfg = TrainConfig.from_cfg({"batch_size": 10, "epochs": 2, "stop_points": [0.25, 0.5, 1.0]})
    assert cfg.total_steps(95) == 20
    assert cfg.stop_steps(95) == {5: 0.25, 10: 0.5, 20: 1.0}
    tiny = TrainConfig.from_cfg({"max_steps": 2, "stop_points": [0.1, 0.5, 1.0]})
    assert tiny.stop_steps(1000) == {1: 0.1, 2: 1.0}  # 0.1 and 0.5 both land on step 1: the first is kept
    with pytest.raises(ValueError, match="stop_points"):
        TrainConfig.from_cfg({"stop_points": [0.5, 0.25]})
    with pytest.raises(ValueError, match=r"training\.learning_rate: unknown key"):
        TrainConfig.from_cfg({"learning_rate": 0.1})


def test_a_query_with_several_positives_trains_on_each_and_never_against_them() -> None:
    queries = pd.DataFrame({"query_id": ["q1", "q2"], "text": ["a?", "b?"]})
    docs = pd.DataFrame({"doc_id": ["d1", "d2", "d3", "d4", "d5"], "text": ["A", "B", "C", "D", "E"]})
    qrels = pd.DataFrame(
        {"query_id": ["q1", "q1", "q1", "q2"], "doc_id": ["d1", "d2", "d3", "d4"], "relevance": [2, 1, 1, 1]}
    )
    negatives = pd.DataFrame(
        {"query_id": ["q1", "q2"], "doc_id": ["d5", "d1"], "band": ["hard"] * 2, "score": [0.5] * 2, "rank": [1] * 2}
    )
    examples = build_examples(queries, docs, qrels, negatives)
    assert [(e.query_id, e.doc_id) for e in examples] == [("q1", "d1"), ("q1", "d2"), ("q1", "d3"), ("q2", "d4")]
    batch = collate(examples, relevant_sets(qrels))
    # columns: positives d1 d2 d3 d4, then negatives d5 d5 d5 (q1's, once per example) and d1 (q2's)
    assert batch.documents == ["A", "B", "C", "D", "E", "E", "E", "A"]
    q1_row = [True, True, True, False, False, False, False, True]  # every labelled positive of q1 is masked
    q2_row = [False, False, False, True, False, False, False, False]
    assert batch.relevant_mask.tolist() == [q1_row, q1_row, q1_row, q2_row]
    # Each q1 row scores only its own target (1/t) against the non-relevant d4 and d5 x3 (all 0): the other
    # positives of q1 neither help nor hurt. q2's row sees its target against all seven others (0).
    t = 0.5
    d = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] + [[0.0, 0.0]] * 3 + [[1.0, 0.0]])
    q = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    loss = InfoNCELoss(t)(q, d, batch.relevant_mask)
    q1_loss = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 4))
    q2_loss = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 7))
    assert loss.item() == pytest.approx((3 * q1_loss + q2_loss) / 4, rel=1e-4)
