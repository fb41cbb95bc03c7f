"""`python -m apex.run erm=gpt4o erm.base_url=…` against a local OpenAI-compatible server; failing fast without."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from apex_cli import run_apex
from llm_server import FakeLLMServer

DEBUG = ["experiment=debug", "progress=false", "eval.on_val=false"]


def apex_run(tmp: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_apex(tmp, *DEBUG, *args, env=env)


def test_gpt4o_backend_against_a_local_server_trains_on_maps(tmp_path) -> None:
    """Also the credential probe: a URL password (through the environment) and the API key reach no file or output."""
    password, key = "pa55-Word-9f3e1c", "sk-test-local-server-0000"
    with FakeLLMServer() as server:
        secret_url = server.base_url.replace("http://", f"http://apexuser:{password}@")
        env = {**os.environ, "OPENAI_API_KEY": key, "APEX_TEST_LLM_URL": secret_url}  # erm=gpt4o always wants a key
        done = apex_run(tmp_path, "erm=gpt4o", "erm.base_url=${oc.env:APEX_TEST_LLM_URL}", env=env)
        chats = [r for r in server.log if r["path"].endswith("/chat/completions")]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERM input-size reduction" in done.stdout
    assert chats, "the run sent no chat request"
    # the summary counts valid maps, re-asks and plain-text documents (docs/erm.md, "A served local model")
    counts = re.search(
        r"ERM maps: (\d+) valid of (\d+) documents .*; (\d+) re-asks, (\d+) requests this run", done.stdout
    )
    assert counts, done.stdout[-2000:]
    assert int(counts.group(1)) == int(counts.group(2)) == len(chats) == int(counts.group(4))
    assert len({r["doc"] for r in chats}) == len(chats)  # one request per training document, none repeated
    assert all(r["temperature"] == 0 for r in chats)
    # run output, MLflow database + artifacts, ERM cache: all under tmp_path; and the captured stdout/stderr
    for secret in (password, key):
        leaks = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert not leaks, f"{secret} found in {leaks}"
        assert secret not in done.stdout + done.stderr
    assert (tmp_path / "cache" / "erm" / "erm.sqlite").is_file() and (tmp_path / "mlflow.db").is_file()
    # quiet by default: no third-party warnings or bars a user cannot act on
    for noise in ("Loading weights", "FutureWarning", "Token indices sequence length", "HTTP Request", "kernels"):
        assert noise not in done.stdout + done.stderr, noise


def test_gpt4o_without_key_fails_at_once_with_a_clear_message(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    started = time.perf_counter()
    done = apex_run(tmp_path, "erm=gpt4o", env=env)
    assert done.returncode == 3  # backend unavailable (apex.core.cli)
    assert_one_line_error(done, "needs an API key", "OPENAI_API_KEY")
    assert time.perf_counter() - started < 60  # no training, no model load, no retries against the network


def test_dead_server_fails_at_once(tmp_path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-dead-server-000000"}
    with FakeLLMServer() as server:
        url = server.base_url
    started = time.perf_counter()
    done = apex_run(tmp_path, "erm=openai_compatible", f"erm.base_url={url}", "erm.preflight_timeout_s=2", env=env)
    assert done.returncode == 3
    assert_one_line_error(done, url, "did not answer")
    assert time.perf_counter() - started < 60


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """The documented failure format: one `error:` line naming the problem, one line with the exit status."""
    assert "Traceback" not in done.stderr
    error, status = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("python -m apex.run: error: ") and all(f in error for f in fragments), error
    assert status == f"(exit status {done.returncode}; add --verbose for the traceback)"


@pytest.mark.slow
def test_server_killed_mid_run_stops_the_run_before_training_and_a_rerun_resumes(tmp_path) -> None:
    """A view degraded by transport failures is never trained on: pending documents stop the run (exit 3)."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-killed-server-0000"}
    fast = ["erm.max_retries=1", "erm.backoff_base_s=0.01", "erm.backoff_max_s=0.02", "erm.concurrency=2"]
    with FakeLLMServer(die_after=10) as first:
        port, url = first.port, first.base_url
        done = apex_run(tmp_path, "erm=openai_compatible", f"erm.base_url={url}", "erm.model=m", *fast, env=env)
    assert done.returncode == 3, done.stderr[-2000:]
    assert_one_line_error(done, "stopped answering", "pending", "0 failed", "re-run the same command to resume")
    pending = int(re.search(r"(\d+) pending", done.stderr).group(1))
    assert pending > 0 and not (tmp_path / "mlflow.db").exists()  # stopped before the MLflow run: nothing trained
    with FakeLLMServer(port=port) as again:
        done = apex_run(tmp_path, "erm=openai_compatible", f"erm.base_url={url}", "erm.model=m", *fast, env=env)
        resent = [r["doc"] for r in again.chat_log()]
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(resent) == len(set(resent)) == pending  # exactly one request per pending document


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
