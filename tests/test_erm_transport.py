"""Transport failures leave documents pending, never failed: a server killed mid-run, 5xx, non-JSON 200s, long texts.

Only an answer the model gave (invalid after re-asks, a refusal, a 4xx on the request) is a permanent failure; when
the server stops answering, the stage stops with one line (done / pending / failed, how to resume) and a re-run sends
each pending document exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from llm_server import FakeLLMServer

from apex.erm import ErmConfig, build_maps
from apex.erm.cache import ErmCache, Outcome
from apex.erm.client import ErmPendingError
from apex.erm.prompts import MAP_TASK
from apex.erm.runner import scope_of

SECRET = "sk-transport-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def texts(n: int) -> list[str]:
    return [f"Report {i} on Alpha{i} and Beta{i} in the town of Gamma{i}." for i in range(n)]


def items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"d{i}" for i in range(n)], "text": texts(n)})


def cfg(base_url: str, **over) -> ErmConfig:
    base = {"name": "openai_compatible", "base_url": base_url, "model": "m", "concurrency": 2, "timeout_s": 2.0,
            "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02, "preflight_timeout_s": 1.0}  # fmt: skip
    return ErmConfig.from_cfg({**base, **over})


def stored_failures(cache_dir: Path, config: ErmConfig, n: int) -> dict[str, Outcome]:
    scope = scope_of(MAP_TASK, config)
    with ErmCache(cache_dir) as cache:
        return cache.failures([scope.key(t) for t in texts(n)])


def test_server_killed_mid_run_stops_the_stage_and_resume_sends_each_pending_doc_once(tmp_path: Path) -> None:
    n = 16
    with FakeLLMServer(die_after=5, latency_s=0.02) as first:
        port, url = first.port, first.base_url
        t0 = time.monotonic()
        with pytest.raises(ErmPendingError) as err:
            build_maps(items(n), cfg(url), tmp_path, progress=False)
        seconds = time.monotonic() - t0
    e = err.value
    assert e.failed == 0 and e.done >= 5 and e.pending > 0 and e.done + e.pending == n
    message = str(e)
    assert "\n" not in message and f"{e.done} documents done, {e.pending} pending, 0 failed of {n}" in message
    assert "re-run the same command to resume" in message and url in message
    assert seconds < 10  # stopped after one window of unanswered documents, not after every document's backoff
    assert stored_failures(tmp_path, cfg(url), n) == {}  # nothing recorded as failed: the model never answered
    scope = scope_of(MAP_TASK, cfg(url))
    with ErmCache(tmp_path) as cache:
        done_before = {t for t in texts(n) if scope.key(t) in cache.results([scope.key(t) for t in texts(n)])}
    assert len(done_before) == e.done

    with FakeLLMServer(port=port) as again:  # the server is back, at the same URL
        result = build_maps(items(n), cfg(url), tmp_path, progress=False)
        resent = [r["doc"] for r in again.chat_log()]
    assert len(resent) == e.pending == len(set(resent))  # exactly one request per pending document
    assert not set(resent) & done_before  # and none for a document already answered
    assert result.maps["status"].tolist() == ["ok"] * n and result.failures.empty
    assert result.stats["cache_hits"] == e.done and result.stats["requests_sent"] == e.pending


@pytest.mark.parametrize("fault", ["html", "badjson"])
def test_non_json_200_is_retried_per_document(tmp_path: Path, fault: str) -> None:
    with FakeLLMServer() as srv:
        srv.faults[texts(3)[1]] = [fault]  # a proxy page once, then a real answer
        result = build_maps(items(3), cfg(srv.base_url), tmp_path, progress=False)
        assert srv.requests_for(texts(3)[1]) == 2
    assert result.maps["status"].tolist() == ["ok"] * 3 and result.stats["retries"] == 1


def test_persistent_non_json_200_leaves_the_document_pending(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        srv.faults[texts(3)[0]] = ["html"] * 10
        with pytest.raises(ErmPendingError, match=r"non-JSON answer \(HTTP 200\).*2 documents done, 1 pending"):
            build_maps(items(3), cfg(srv.base_url, concurrency=4), tmp_path, progress=False)
    assert stored_failures(tmp_path, cfg(srv.base_url), 3) == {}


def test_stored_transport_failure_of_an_older_version_is_resent(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        config = cfg(srv.base_url)
        scope = scope_of(MAP_TASK, config)
        key = scope.key(texts(2)[0])
        with ErmCache(tmp_path) as cache:
            cache.put(scope, [Outcome(key, "x", False, "", "connection error: Connection error. after 7 requests", 7)])
        result = build_maps(items(2), config, tmp_path, progress=False)
        assert srv.requests_for(texts(2)[0]) == 1
    assert result.maps["status"].tolist() == ["ok", "ok"]


def test_model_answers_that_fail_validation_are_permanent_failures(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        srv.faults[texts(2)[0]] = ["schema"] * 3
        srv.faults[texts(2)[1]] = ["400"]
        result = build_maps(items(2), cfg(srv.base_url, max_reasks=2), tmp_path, progress=False)
    assert result.maps["status"].tolist() == ["failed", "failed"]
    assert len(stored_failures(tmp_path, cfg(srv.base_url), 2)) == 2


def test_batch_lines_with_5xx_stay_pending(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        srv.faults[texts(3)[2]] = ["500"] * 3
        config = cfg(srv.base_url, mode="batch", batch_poll_s=0.01, max_reasks=1)
        with pytest.raises(ErmPendingError, match="2 documents done, 1 pending, 0 failed of 3"):
            build_maps(items(3), config, tmp_path, progress=False)
        assert stored_failures(tmp_path, config, 3) == {}
        result = build_maps(items(3), config, tmp_path, progress=False)
    assert result.maps["status"].tolist() == ["ok"] * 3


def test_ten_megabyte_document_is_cut_and_counted_with_spacy(tmp_path: Path, caplog) -> None:
    pytest.importorskip("spacy")
    big = ("Marie Curie worked in Paris with Pierre Curie. " * 230_000)[: 10 * 2**20]
    table = pd.DataFrame({"id": ["small", "huge"], "text": ["Ada Lovelace met Charles Babbage in London.", big]})
    config = ErmConfig.from_cfg({"name": "spacy", "max_input_chars": 20_000, "spacy_n_process": 1})
    with caplog.at_level("WARNING", logger="apex.erm"):
        result = build_maps(table, config, tmp_path, progress=False)
    assert result.stats["n_truncated"] == 1.0
    assert result.maps["status"].tolist() == ["ok", "ok"]
    assert any("huge" in r.getMessage() and "max_input_chars=20000" in r.getMessage() for r in caplog.records)


def test_long_document_sent_to_an_llm_is_cut_to_the_limit(tmp_path: Path) -> None:
    long_text = "Alpha Beta Gamma " * 2000  # 34,000 characters
    table = pd.DataFrame({"id": ["long"], "text": [long_text]})
    with FakeLLMServer() as srv:
        result = build_maps(table, cfg(srv.base_url, max_input_chars=1000), tmp_path, progress=False)
        sent = srv.chat_log()[0]["doc"]
    assert len(sent) <= 1000 and long_text.startswith(sent) and not sent.endswith(" ")
    assert result.stats["n_truncated"] == 1.0 and result.maps["status"].tolist() == ["ok"]
