"""`python -m apex.run erm=gpt4o erm.base_url=…` against a local OpenAI-compatible server; failing fast without."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from apex_cli import run_apex
from llm_server import FakeLLMServer

DEBUG = ["experiment=debug", "progress=false", "eval.on_val=false"]


def apex_run(tmp: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_apex(tmp, *DEBUG, *args, env=env)


def test_gpt4o_backend_against_a_local_server_trains_on_maps(tmp_path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-local-server-0000"}  # erm=gpt4o always wants a key
    with FakeLLMServer() as server:
        done = apex_run(tmp_path, "erm=gpt4o", f"erm.base_url={server.base_url}", env=env)
        chats = [r for r in server.log if r["path"].endswith("/chat/completions")]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERM input-size reduction" in done.stdout
    assert chats, "the run sent no chat request"
    assert len({r["doc"] for r in chats}) == len(chats)  # one request per training document, none repeated
    assert all(r["temperature"] == 0 for r in chats)


def test_gpt4o_without_key_fails_at_once_with_a_clear_message(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    started = time.perf_counter()
    done = apex_run(tmp_path, "erm=gpt4o", env=env)
    assert done.returncode != 0
    assert "OPENAI_API_KEY" in done.stdout + done.stderr
    assert time.perf_counter() - started < 60  # no training, no model load, no retries against the network


def test_dead_server_fails_at_once(tmp_path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-dead-server-000000"}
    with FakeLLMServer() as server:
        url = server.base_url
    started = time.perf_counter()
    done = apex_run(tmp_path, "erm=openai_compatible", f"erm.base_url={url}", "erm.preflight_timeout_s=2", env=env)
    assert done.returncode != 0
    assert url.split("/v1")[0] in done.stdout + done.stderr or "server" in (done.stdout + done.stderr).lower()
    assert time.perf_counter() - started < 60


def test_corpus_without_queries_gets_llm_queries(tmp_path) -> None:
    topics = ["river", "mountain", "city", "painter", "battle", "planet"]
    rows = [
        {
            "_id": f"doc{i}",
            "title": "",
            "text": f"Document {i} tells of the {topics[i % 6]} Number{i} in Region{i // 6}.",
        }
        for i in range(60)
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-local-server-0000"}
    with FakeLLMServer() as server:
        done = apex_run(
            tmp_path,
            "dataset.name=corpus",
            f"dataset.path={corpus}",
            "dataset.queries=llm",
            "erm=openai_compatible",
            f"erm.base_url={server.base_url}",
            env=env,
        )
        chats = [r for r in server.log if r["path"].endswith("/chat/completions")]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test split: 16 queries against a corpus of 16 documents" in done.stdout
    # one query request per document (all 60, split by split), then one map request per training document
    assert len(chats) == 60 + (60 - 16 - 8)
