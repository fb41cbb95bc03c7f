"""What apex sends to each kind of server (request bodies), and the fallback when a server rejects a field.

The fake server refuses fields the way real ones do (llama-cpp-python: HTTP 422 for a `json_schema`
response_format; a strict proxy: 400 for `seed`); the run must step down once, say so in one log line, and still
write every map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from llm_server import FakeLLMServer

from apex.erm import ErmConfig, build_maps
from apex.erm.llm import request_body
from apex.erm.prompts import MAP_TASK, QUERY_TASK
from apex.erm.schema import LLM_JSON_SCHEMA

TEXTS = [f"Document{i} names Alpha{i} and Beta{i} in Paris." for i in range(8)]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-compat-000000000")


def cfg(**over: object) -> ErmConfig:
    base = {
        "name": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "seed": 3,
        "max_tokens": 512,
        "timeout_s": 5,
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
    }
    return ErmConfig.from_cfg({**base, **over})  # fmt: skip


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        # OpenAI, vLLM, llama.cpp's llama-server, Ollama >= 0.5
        ("json_schema", {"type": "json_schema", "json_schema": {
            "name": "entity_relationship_map", "strict": True, "schema": LLM_JSON_SCHEMA}}),
        # llama-cpp-python's server (grammar built from the schema)
        ("json_object_schema", {"type": "json_object", "schema": LLM_JSON_SCHEMA}),
        ("json_object", {"type": "json_object"}),  # JSON mode only: our validator checks the shape
        ("none", None),
    ],
)  # fmt: skip
def test_request_body_per_structured_output_level(level: str, expected: dict | None) -> None:
    body = request_body(MAP_TASK, cfg(structured_output=level), "Some text.")
    assert body.get("response_format") == expected
    assert ("response_format" in body) is (expected is not None)  # `none` sends no key at all, not null
    assert body["model"] == "m" and body["seed"] == 3 and body["max_tokens"] == 512 and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "<document>\nSome text.\n</document>"


def test_query_task_sends_its_own_schema() -> None:
    body = request_body(QUERY_TASK, cfg(structured_output="json_object_schema"), "Some text.")
    assert body["response_format"] == {"type": "json_object", "schema": QUERY_TASK.json_schema}


def run(srv: FakeLLMServer, tmp: Path, **over: object):
    items = pd.DataFrame({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS})
    return build_maps(items, cfg(base_url=srv.base_url, **over), tmp, progress=False)


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "for the rest of this run" in r.getMessage()]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_json_schema_rejected_like_llama_cpp_python_falls_back_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, concurrency: int
) -> None:
    caplog.set_level(logging.INFO, logger="apex.erm")
    with FakeLLMServer(reject=("json_schema",)) as srv:
        result = run(srv, tmp_path, structured_output="json_schema", concurrency=concurrency)
        chats = srv.chat_log()
    assert result.stats["n_ok"] == len(TEXTS) and result.stats["n_failed"] == 0
    refused = [r for r in chats if r["response_format"] == "json_schema"]
    accepted = [r for r in chats if r["response_format"] == "json_object"]
    assert 1 <= len(refused) <= concurrency  # only requests already in flight when the first 422 came back
    assert len(accepted) == len(TEXTS)
    assert all(r["body"]["response_format"]["schema"] == LLM_JSON_SCHEMA for r in accepted)
    assert result.stats["requests_sent"] == len(chats)  # the refused requests are counted too
    lines = fallback_lines(caplog)
    assert len(lines) == 1, lines
    assert "rejected response_format json_schema (HTTP 422" in lines[0] and "json_object_schema" in lines[0]


def test_steps_down_twice_and_drops_a_rejected_seed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="apex.erm")
    with FakeLLMServer(reject=("json_schema", "schema", "seed")) as srv:
        result = run(srv, tmp_path, structured_output="json_schema", concurrency=1)
        chats = srv.chat_log()
    assert result.stats["n_ok"] == len(TEXTS)
    last = chats[-1]["body"]
    assert last["response_format"] == {"type": "json_object"} and "seed" not in last
    assert [r["response_format"] for r in chats[:3]] == ["json_schema", "json_object", "json_object"]
    assert len(chats) == len(TEXTS) + 3  # three refusals, each once
    lines = fallback_lines(caplog)
    assert len(lines) == 3 and "seed" in lines[2], lines


def test_a_400_that_names_no_field_still_fails_the_document(tmp_path: Path) -> None:
    with FakeLLMServer(reject=("json_schema",)) as srv:
        srv.faults[TEXTS[0]] = ["400"]
        result = run(srv, tmp_path, structured_output="json_object_schema", concurrency=1)
    assert result.stats["n_failed"] == 1 and "HTTP 400" in result.failures["reason"].iloc[0]


def test_accepted_format_is_sent_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="apex.erm")
    with FakeLLMServer() as srv:
        run(srv, tmp_path, structured_output="json_schema", concurrency=2)
        chats = srv.chat_log()
    assert {r["response_format"] for r in chats} == {"json_schema"} and all(r["seed"] == 3 for r in chats)
    assert not fallback_lines(caplog)
