"""The LLM backend driven through the real `openai` client against a local OpenAI-compatible server.

Faults are injected per document; the server counts requests, so each test asserts exactly how many were sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
from llm_server import FakeLLMServer, default_map

from apex.erm import EntityMap, ErmBackendError, ErmConfig, build_maps, generate_queries, render_map
from apex.erm.client import ErmPendingError
from apex.erm.prompts import MAP_PROMPT_VERSION, MAP_TASK

SECRET = "sk-test-SECRET-0123456789abcdef"
DOCS = {
    "d1": "Marie Curie won the Nobel Prize in Physics in 1903 in Stockholm.",
    "d2": "The Amazon River flows through Brazil, Peru and Colombia.",
    "d3": "Ada Lovelace wrote notes on the Analytical Engine of Charles Babbage.",
}


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.fixture
def server():
    with FakeLLMServer(hang_s=1.5, retry_after=0.2) as srv:
        yield srv


def config(srv: FakeLLMServer, **over) -> ErmConfig:
    base = {
        "name": "openai_compatible", "base_url": srv.base_url, "model": "test-model", "timeout_s": 0.5,
        "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_reasks": 2, "concurrency": 4,
        "preflight_timeout_s": 1.0, "seed": 7, "price_prompt_per_1m": 2.5, "price_completion_per_1m": 10.0,
    }  # fmt: skip
    base.update(over)
    return ErmConfig.from_cfg(base)


def items(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids), "text": [DOCS[i] for i in ids]})


def test_correct_maps_and_request_parameters(server: FakeLLMServer, tmp_path: Path) -> None:
    answer = {
        "entities": [
            {"name": "Marie Curie", "type": "person", "attributes": []},
            {"name": "Nobel Prize in Physics", "type": "award", "attributes": [{"key": "year", "value": "1903"}]},
        ],
        "relations": [{"subject": "Marie Curie", "predicate": "won", "object": "Nobel Prize in Physics",
                       "qualifiers": [{"key": "place", "value": "Stockholm"}]}],
    }  # fmt: skip
    server.answers[DOCS["d1"]] = json.dumps(answer, indent=2)
    result = build_maps(items("d1", "d2"), config(server), tmp_path, progress=False)

    assert result.maps["doc_id"].tolist() == ["d1", "d2"]
    assert result.maps["status"].tolist() == ["ok", "ok"]
    expected = EntityMap.from_data(answer)
    assert result.maps["map_json"][0] == expected.to_json()
    assert result.maps["text"][0] == render_map(expected)
    assert result.maps["text"][0].splitlines()[-1] == "Marie Curie | won | Nobel Prize in Physics | place: Stockholm"
    assert EntityMap.from_json(result.maps["map_json"][1]) == EntityMap.from_data(default_map(DOCS["d2"]))

    chat = server.chat_log()
    assert len(chat) == 2 and result.stats["requests_sent"] == 2
    assert {r["temperature"] for r in chat} == {0.0} and {r["seed"] for r in chat} == {7}
    assert {r["response_format"] for r in chat} == {"json_schema"} and {r["model"] for r in chat} == {"test-model"}
    # usage, served model name and fingerprint per document; totals and cost in stats
    assert set(result.usage["response_model"]) == {"test-model-served"}
    assert set(result.usage["system_fingerprint"]) == {"fp_fake"}
    assert result.stats["prompt_tokens"] == result.usage["prompt_tokens"].sum() > 0
    cost = (result.stats["prompt_tokens"] * 2.5 + result.stats["completion_tokens"] * 10.0) / 1e6
    assert result.stats["est_cost_usd"] == pytest.approx(cost)


def test_json_object_mode(server: FakeLLMServer, tmp_path: Path) -> None:
    result = build_maps(items("d1"), config(server, structured_output="json_object"), tmp_path, progress=False)
    assert result.maps["status"].tolist() == ["ok"]
    assert [r["response_format"] for r in server.chat_log()] == ["json_object"]


def test_concurrency_keeps_requests_in_flight(tmp_path: Path) -> None:
    with FakeLLMServer(latency_s=0.2) as srv:
        texts = [f"Document Number{i} about Topic{i}." for i in range(16)]
        frame = pd.DataFrame({"id": [f"x{i}" for i in range(16)], "text": texts})
        result = build_maps(frame, config(srv, concurrency=8, timeout_s=5.0), tmp_path, progress=False)
        assert result.stats["n_ok"] == 16
        assert srv.max_in_flight == 8


def test_429_honours_retry_after(server: FakeLLMServer, tmp_path: Path) -> None:
    server.faults[DOCS["d1"]] = ["429"]
    t0 = time.monotonic()
    result = build_maps(items("d1"), config(server), tmp_path, progress=False)
    assert time.monotonic() - t0 >= 0.2  # Retry-After: 0.2 s, far above the 0.05 s backoff cap
    assert server.requests_for(DOCS["d1"]) == 2
    assert result.maps["status"].tolist() == ["ok"] and result.stats["retries"] == 1


def test_500_is_retried_then_left_pending(server: FakeLLMServer, tmp_path: Path) -> None:
    server.faults[DOCS["d1"]] = ["500"]
    server.faults[DOCS["d2"]] = ["500"] * 10
    with pytest.raises(ErmPendingError, match=r"1 documents done, 1 pending, 0 failed of 2") as err:
        build_maps(items("d1", "d2"), config(server, max_retries=3), tmp_path, progress=False)
    assert "HTTP 500 after 4 requests" in str(err.value) and "re-run" in str(err.value)
    assert server.requests_for(DOCS["d1"]) == 2
    assert server.requests_for(DOCS["d2"]) == 4  # 1 + max_retries
    server.faults[DOCS["d2"]] = []  # the server recovers: the re-run sends d2 once, and d1 not at all
    result = build_maps(items("d1", "d2"), config(server, max_retries=3), tmp_path, progress=False)
    assert server.requests_for(DOCS["d1"]) == 2 and server.requests_for(DOCS["d2"]) == 5
    assert result.maps["status"].tolist() == ["ok", "ok"] and result.failures.empty


def test_400_fails_the_document_without_retry(server: FakeLLMServer, tmp_path: Path) -> None:
    server.faults[DOCS["d1"]] = ["400"]
    result = build_maps(items("d1", "d2"), config(server), tmp_path, progress=False)
    assert server.requests_for(DOCS["d1"]) == 1  # repeating the same bad request cannot help
    assert result.maps["status"].tolist() == ["failed", "ok"]
    assert result.failures["reason"][0] == "HTTP 400: context length exceeded"


def test_hanging_request_times_out_and_is_retried(server: FakeLLMServer, tmp_path: Path) -> None:
    server.faults[DOCS["d1"]] = ["hang"]
    t0 = time.monotonic()
    result = build_maps(items("d1"), config(server, timeout_s=0.3), tmp_path, progress=False)
    assert time.monotonic() - t0 < 1.4  # did not wait for the 1.5 s hang
    assert server.requests_for(DOCS["d1"]) == 2
    assert result.maps["status"].tolist() == ["ok"]


@pytest.mark.parametrize("fault", ["malformed", "schema", "length"])
def test_bad_answer_is_reasked_with_feedback(server: FakeLLMServer, tmp_path: Path, fault: str) -> None:
    server.faults[DOCS["d1"]] = [fault]
    result = build_maps(items("d1"), config(server), tmp_path, progress=False)
    chat = server.chat_log()
    assert [r["fault"] for r in chat] == [fault, "ok"]
    assert [r["n_messages"] for r in chat] == [2, 3]  # the re-ask carries a note of what was wrong
    assert result.maps["status"].tolist() == ["ok"] and result.stats["reasks"] == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("malformed", "invalid JSON"),
        ("schema", "schema violation: relations[0].subject: 'X' is not an entity of this map"),
        ("length", "truncated answer (finish_reason=length)"),
    ],
)
def test_bad_answers_fail_after_bounded_reasks_and_stay_failed(
    server: FakeLLMServer, tmp_path: Path, fault: str, reason: str
) -> None:
    server.faults[DOCS["d1"]] = [fault] * 3
    result = build_maps(items("d1", "d2"), config(server, max_reasks=2), tmp_path, progress=False)
    assert server.requests_for(DOCS["d1"]) == 3  # 1 + max_reasks
    assert result.maps.set_index("doc_id").loc["d1", "status"] == "failed"
    assert result.maps.set_index("doc_id").loc["d1", "text"] == ""
    failure = result.failures.iloc[0]
    assert failure["doc_id"] == "d1" and reason in failure["reason"] and "after 3 answers" in failure["reason"]
    assert result.stats["n_failed"] == 1 and result.stats["n_ok"] == 1

    # A re-run sends nothing: the success is cached, the failure is kept in its own table.
    again = build_maps(items("d1", "d2"), config(server), tmp_path, progress=False)
    assert len(server.chat_log()) == 4 and again.stats["requests_sent"] == 0
    assert again.stats["failures_skipped"] == 1 and again.maps["status"].tolist() == ["failed", "ok"]

    # One flag retries the failures (and only them).
    retried = build_maps(items("d1", "d2"), config(server, retry_failed=True), tmp_path, progress=False)
    assert len(server.chat_log()) == 5 and server.requests_for(DOCS["d2"]) == 1
    assert retried.maps["status"].tolist() == ["ok", "ok"] and len(retried.failures) == 0


def test_duplicate_texts_are_requested_once(server: FakeLLMServer, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "text": [DOCS["d1"], DOCS["d1"]]})
    result = build_maps(frame, config(server), tmp_path, progress=False)
    assert len(server.chat_log()) == 1
    assert result.maps["map_json"][0] == result.maps["map_json"][1] != ""


def test_cache_key_includes_prompt_version_and_model(server: FakeLLMServer, tmp_path: Path, monkeypatch) -> None:
    build_maps(items("d1"), config(server), tmp_path, progress=False)
    build_maps(items("d1"), config(server, model="other-model"), tmp_path, progress=False)
    assert len(server.chat_log()) == 2
    edited = dataclasses.replace(MAP_TASK, prompt_version=MAP_PROMPT_VERSION + "-edited")
    monkeypatch.setattr("apex.erm.pipeline.MAP_TASK", edited)
    build_maps(items("d1"), config(server), tmp_path, progress=False)
    assert len(server.chat_log()) == 3


def test_empty_map_is_reported(server: FakeLLMServer, tmp_path: Path, caplog) -> None:
    doc = "nothing capitalised here at all"
    frame = pd.DataFrame({"id": ["z"], "text": [doc]})
    with caplog.at_level(logging.WARNING, logger="apex.erm"):
        result = build_maps(frame, config(server), tmp_path, progress=False)
    assert result.maps["status"].tolist() == ["empty"] and result.stats["n_empty"] == 1
    assert any("status 'empty'" in r.getMessage() and "z" in r.getMessage() for r in caplog.records)


def test_dead_server_fails_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ErmConfig.from_cfg(
        {"name": "openai_compatible", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "preflight_timeout_s": 1}
    )
    with pytest.raises(ErmBackendError, match="did not answer"):
        build_maps(items("d1"), cfg, tmp_path, progress=False)


def test_gpt4o_without_key_fails_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ErmBackendError, match="OPENAI_API_KEY"):
        build_maps(items("d1"), ErmConfig.from_cfg({"name": "gpt4o"}), tmp_path, progress=False)


def test_local_server_gets_placeholder_key(monkeypatch: pytest.MonkeyPatch, server, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = build_maps(items("d1"), config(server), tmp_path, progress=False)
    assert result.maps["status"].tolist() == ["ok"]


def test_rejected_key_stops_the_run(tmp_path: Path) -> None:
    with FakeLLMServer(require_key="sk-the-right-key-000") as srv:
        with pytest.raises(ErmBackendError, match="rejected the API key"):
            build_maps(items("d1"), config(srv), tmp_path, progress=False)
        assert srv.chat_log() == []


def test_secret_never_stored_or_logged(server: FakeLLMServer, tmp_path: Path, caplog) -> None:
    server.faults[DOCS["d1"]] = ["500", "malformed", "schema", "length", "html"]
    server.faults[DOCS["d2"]] = ["429", "hang"]
    cache = tmp_path / "cache"
    with caplog.at_level(logging.DEBUG):
        result = build_maps(items("d1", "d2", "d3"), config(server, max_reasks=1), cache, progress=False)
        queries = generate_queries(
            pd.DataFrame({"doc_id": ["d3"], "text": [DOCS["d3"]]}), config(server), cache, progress=False
        )
    out = tmp_path / "out"
    out.mkdir()
    result.maps.to_parquet(out / "maps.parquet")
    result.failures.to_parquet(out / "failures.parquet")
    result.usage.to_parquet(out / "usage.parquet")
    queries.queries.to_parquet(out / "queries.parquet")
    (out / "stats.json").write_text(json.dumps(result.stats))
    assert len(result.failures) == 1  # the failure path, with its reason, was exercised
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("erm.sqlite") for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert SECRET not in repr(result.stats) + result.failures.to_string() + result.maps.to_string()


def test_generate_queries_cached_and_resumable(server: FakeLLMServer, tmp_path: Path) -> None:
    corpus = pd.DataFrame({"doc_id": ["d1", "d2"], "title": ["", ""], "text": [DOCS["d1"], DOCS["d2"]]})
    server.query_answers[DOCS["d1"]] = json.dumps({"query": "  Who won the 1903 Nobel Prize in Physics? "})
    result = generate_queries(corpus, config(server), tmp_path, progress=False)
    assert result.queries.to_dict("records") == [
        {"query_id": "q-d1", "text": "Who won the 1903 Nobel Prize in Physics?"},
        {"query_id": "q-d2", "text": "what about The Amazon River flows through"},
    ]
    assert result.qrels.to_dict("records") == [
        {"query_id": "q-d1", "doc_id": "d1", "relevance": 1},
        {"query_id": "q-d2", "doc_id": "d2", "relevance": 1},
    ]
    build_maps(items("d1"), config(server), tmp_path, progress=False)  # maps and queries do not share keys
    assert len(server.chat_log()) == 3
    again = generate_queries(corpus, config(server), tmp_path, progress=False)
    assert len(server.chat_log()) == 3 and again.stats["cache_hits"] == 2
    with pytest.raises(ValueError, match="LLM backend"):
        generate_queries(corpus, ErmConfig.from_cfg({"name": "spacy"}), tmp_path, progress=False)
