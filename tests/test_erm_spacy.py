"""The offline spaCy extractor on real SQuAD v1.1 dev paragraphs: known entities and relations, valid maps, cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from apex.erm import EntityMap, ErmConfig, build_maps, render_map
from apex.erm.runner import LLM_ONLY_STATS

spacy_backend = pytest.importorskip("apex.erm.spacy_backend")


@pytest.fixture(scope="module")
def paragraphs() -> dict[tuple[str, int], str]:
    from apex.data import BUNDLED_SQUAD

    data = json.loads(gzip.decompress(Path(BUNDLED_SQUAD).read_bytes()))
    return {(a["title"], i): p["context"] for a in data["data"] for i, p in enumerate(a["paragraphs"])}


@pytest.fixture(scope="module")
def nlp():
    try:
        return spacy_backend.load_nlp()[0]
    except RuntimeError as err:
        pytest.skip(str(err))


def _map(nlp, text: str) -> EntityMap:
    return next(spacy_backend.extract_maps([text], nlp))


def _triples(erm: EntityMap) -> set[tuple[str, str, str]]:
    return {(r.subject, r.predicate, r.object) for r in erm.relations}


def test_super_bowl_paragraph(nlp, paragraphs) -> None:
    erm = _map(nlp, paragraphs[("Super_Bowl_50", 0)])
    names = {e.name for e in erm.entities}
    assert {"Denver Broncos", "Carolina Panthers", "Levi's Stadium", "Santa Clara", "National Football League"} <= names
    triples = _triples(erm)
    assert ("Denver Broncos", "defeated", "Carolina Panthers") in triples  # subject via apposition of "champion"
    assert ("National Football League", "abbreviated as", "NFL") in triples
    assert ("Levi's Stadium", "in", "San Francisco Bay Area") in triples
    defeated = next(r for r in erm.relations if r.predicate == "defeated")
    assert ("number", "24–10") in {(q.key, q.value) for q in defeated.qualifiers}
    played = next(r for r in erm.relations if r.object == "Levi's Stadium")
    assert played.predicate == "was played at"
    assert ("date", "February 7, 2016") in {(q.key, q.value) for q in played.qualifiers}


def test_apollo_and_warsaw_paragraphs(nlp, paragraphs) -> None:
    apollo = _triples(_map(nlp, paragraphs[("Apollo_program", 0)]))
    assert ("National Aeronautics and Space Administration", "abbreviated as", "NASA") in apollo
    assert ("Project Mercury", "was followed by", "Project Gemini") in apollo  # passive with agent
    warsaw = _triples(_map(nlp, paragraphs[("Warsaw", 46)]))
    assert ("Warsaw Stock Exchange", "abbreviated as", "WSE") in warsaw
    tesla = _map(nlp, paragraphs[("Nikola_Tesla", 0)])
    assert ("Nikola Tesla", "was", "physicist") in _triples(tesla)
    tesla_attrs = {(a.key, a.value) for e in tesla.entities if e.name == "Nikola Tesla" for a in e.attributes}
    assert {("date", "10 July 1856"), ("date", "7 January 1943")} <= tesla_attrs


def test_maps_are_valid_and_deterministic(nlp, paragraphs) -> None:
    texts = list(paragraphs.values())[:40]
    first = list(spacy_backend.extract_maps(texts, nlp, batch_size=16))
    second = list(spacy_backend.extract_maps(texts, nlp, batch_size=7))
    assert first == second
    for erm in first:
        assert EntityMap.from_json(erm.to_json()) == erm  # the validators accept every extracted map
        assert render_map(erm) == render_map(EntityMap.from_json(erm.to_json()))
        for rel in erm.relations:  # every relation touches at least one named entity
            types = {e.name: e.type for e in erm.entities}
            assert types[rel.subject] != "concept" or types[rel.object] != "concept"
    assert sum(len(e.entities) > 0 for e in first) >= 38


def test_build_maps_spacy_uses_cache(paragraphs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = list(paragraphs.values())[:20]
    items = pd.DataFrame({"id": [f"p{i}" for i in range(20)], "text": texts})
    cfg = ErmConfig.from_cfg({"name": "spacy", "spacy_batch_size": 8})
    result = build_maps(items, cfg, tmp_path, progress=False)
    assert len(result.maps) == 20 and set(result.maps["status"]) <= {"ok", "empty"}
    assert result.stats["n_ok"] + result.stats["n_empty"] == 20
    assert not LLM_ONLY_STATS & set(result.stats)  # no request, no cost: absent, not logged as 0

    def refuse(*_a, **_k):
        raise AssertionError("the model must not be loaded when every map is cached")

    monkeypatch.setattr(spacy_backend, "load_nlp", refuse)
    again = build_maps(items, cfg, tmp_path, progress=False)
    assert again.stats["cache_hits"] == 20
    pd.testing.assert_frame_equal(again.maps, result.maps)


def test_worker_processes_give_byte_identical_maps(nlp, paragraphs) -> None:
    """The fast path (BLAS matrix products, parse + rules in 2 worker processes) against the path before it (blis,
    one process, `nlp.pipe`, rules in the parent) on 200 SQuAD paragraphs: the same JSON, byte for byte, in order."""
    import spacy

    texts = list(paragraphs.values())[:200]
    name = spacy_backend.resolve_model().rsplit("-", 1)[0]
    before = spacy.load(name, disable=["lemmatizer"])  # thinc's default ops: blis
    assert not any(isinstance(layer.ops, spacy_backend.BlasGemmOps) for layer in before.get_pipe("ner").model.walk())
    reference = [spacy_backend.extract_map(doc).to_json() for doc in before.pipe(texts, batch_size=64)]
    fast = [m.to_json() for m in spacy_backend.extract_maps(texts, nlp, batch_size=64, n_process=2)]
    assert fast == reference
    assert len(set(reference)) > 190  # real, distinct maps: not 200 empty ones
