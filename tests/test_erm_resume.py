"""Crash safety and resume: SIGKILL mid-run loses no finished document and repeats no request; Batch API; DVC CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from llm_server import FakeLLMServer

from apex.core.cli import guard
from apex.erm import ErmBackendError, ErmConfig, build_maps
from apex.erm.cache import ErmCache
from apex.erm.prompts import MAP_TASK
from apex.erm.runner import scope_of

REPO = Path(__file__).resolve().parents[1]
N_DOCS = 60
SECRET = "sk-resume-SECRET-abcdef0123456789"

CHILD = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from apex.erm import ErmConfig, build_maps
    base_url, cache_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    texts = [f"Document Alpha{i} mentions Beta{i} and Gamma{i}." for i in range(n)]
    cfg = ErmConfig.from_cfg({"name": "openai_compatible", "base_url": base_url, "model": "m",
                              "concurrency": 4, "timeout_s": 10})
    build_maps(pd.DataFrame({"id": [f"d{i}" for i in range(n)], "text": texts}), cfg, cache_dir, progress=False)
    """
)


def _texts(n: int) -> list[str]:
    return [f"Document Alpha{i} mentions Beta{i} and Gamma{i}." for i in range(n)]


def _cfg(base_url: str, **over) -> ErmConfig:
    return ErmConfig.from_cfg({"name": "openai_compatible", "base_url": base_url, "model": "m", "concurrency": 4,
                               "timeout_s": 10, **over})  # fmt: skip


def _finished(cache_dir: Path, cfg: ErmConfig) -> set[str]:
    scope = scope_of(MAP_TASK, cfg)
    keys = {scope.key(t): t for t in _texts(N_DOCS)}
    with ErmCache(cache_dir) as cache:
        return {keys[k] for k in cache.results(list(keys))}


def _run_and_kill(srv: FakeLLMServer, script: Path, cache_dir: Path, kill_after: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, str(script), srv.base_url, str(cache_dir), str(N_DOCS)], cwd=REPO, env=env)
    deadline = time.monotonic() + 60
    while len(srv.chat_log()) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the child finished before it could be killed"


def test_sigkill_mid_run_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache_dir = tmp_path / "cache"
    with FakeLLMServer(latency_s=0.05) as srv:
        cfg = _cfg(srv.base_url)
        finished_before: set[str] = set()
        requested_before = 0
        for kill_after in (12, 36):  # two crashes at different points, then a clean run
            _run_and_kill(srv, script, cache_dir, kill_after)
            finished = _finished(cache_dir, cfg)
            assert finished_before <= finished  # nothing finished was lost
            assert 0 < len(finished) < N_DOCS
            new_requests = srv.chat_log()[requested_before:]
            assert not {r["doc"] for r in new_requests} & finished_before  # no repeat for a finished document
            finished_before, requested_before = finished, len(srv.chat_log())

        result = build_maps(pd.DataFrame({"id": [f"d{i}" for i in range(N_DOCS)], "text": _texts(N_DOCS)}), cfg,
                            cache_dir, progress=False)  # fmt: skip
        last_run = srv.chat_log()[requested_before:]
        assert not {r["doc"] for r in last_run} & finished_before
        assert len(last_run) == N_DOCS - len(finished_before) == result.stats["requests_sent"]
        assert result.stats["cache_hits"] == len(finished_before)

    assert result.maps["doc_id"].tolist() == [f"d{i}" for i in range(N_DOCS)]  # every document exactly once
    assert set(result.maps["status"]) == {"ok"}
    per_doc = pd.Series([r["doc"] for r in srv.chat_log()]).value_counts()
    assert set(per_doc.index) == set(_texts(N_DOCS))
    assert per_doc.max() <= 3  # only requests in flight at a kill were ever repeated
    for path in cache_dir.rglob("*"):
        assert path.is_dir() or SECRET.encode() not in path.read_bytes()


def test_batch_mode_with_reask_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    texts = _texts(4)
    with FakeLLMServer() as srv:
        srv.faults[texts[1]] = ["malformed"]
        srv.faults[texts[2]] = ["length"] * 5
        cfg = _cfg(srv.base_url, mode="batch", batch_poll_s=0.01, max_reasks=1, price_prompt_per_1m=2.0)
        items = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": texts})
        result = build_maps(items, cfg, tmp_path, progress=False)
        lines = [r for r in srv.log if r["path"] == "batch-line"]
        batches = [r for r in srv.log if r["path"] == "/v1/batches"]
    assert result.maps["status"].tolist() == ["ok", "ok", "failed", "ok"]
    assert len(batches) == 2  # round 0 with 4 lines, round 1 re-asks b and c
    assert [r["doc"] for r in lines].count(texts[1]) == 2 and [r["doc"] for r in lines].count(texts[2]) == 2
    assert result.stats["requests_sent"] == 6
    assert "truncated" in result.failures["reason"][0] and result.failures["doc_id"][0] == "c"
    assert result.stats["est_cost_usd"] == pytest.approx(0.5 * 2.0 * result.stats["prompt_tokens"] / 1e6)


def test_batch_resume_polls_the_open_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    items = pd.DataFrame({"id": ["a", "b", "c"], "text": _texts(3)})
    with FakeLLMServer(batch_polls=10_000) as srv:
        cfg = _cfg(srv.base_url, mode="batch", batch_poll_s=0.02, batch_max_wait_s=0.2)
        with pytest.raises(ErmBackendError, match="re-run to resume"):
            build_maps(items, cfg, tmp_path, progress=False)
        srv.batch_polls = 0  # the provider finishes the batch while we are away
        result = build_maps(items, cfg, tmp_path, progress=False)
        posts = [r["path"] for r in srv.log if r["path"] in ("/v1/batches", "/v1/files")]
    assert posts == ["/v1/files", "/v1/batches"]  # submitted once, never again
    assert result.maps["status"].tolist() == ["ok", "ok", "ok"]


def _save_splits(folder: Path) -> None:
    from apex.data import Dataset, save_splits

    texts = _texts(9)
    splits = {}
    for s, name in enumerate(("train", "val", "test")):
        idx = range(3 * s, 3 * s + 3)
        splits[name] = Dataset.build(
            name, "synthetic", [(f"d{i}", "", texts[i]) for i in idx], [(f"q{i}", f"Where is Alpha{i}?") for i in idx],
            [(f"q{i}", f"d{i}", 1) for i in idx],
        )  # fmt: skip
    save_splits(splits, folder)


def test_cli_writes_parquet_and_reuses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("apex.data")
    from apex.erm.build import main
    from apex.sampling.mining import empty_negatives

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    _save_splits(tmp_path / "prepared")
    (tmp_path / "negatives").mkdir()
    empty_negatives().to_parquet(tmp_path / "negatives" / "negatives.parquet")  # in_batch: training reads positives
    with FakeLLMServer() as srv:
        params = tmp_path / "params.yaml"
        params.write_text(
            f"erm:\n  name: openai_compatible\n  base_url: {srv.base_url}\n  model: m\n"
            f"  apply_to: documents_and_queries\neval:\n  view: erm\n"  # erm view: val and test get maps too
        )
        args = ["--params", str(params), "--splits", str(tmp_path / "prepared"), "--out", str(tmp_path / "erm"),
                "--negatives", str(tmp_path / "negatives"), "--cache-dir", str(tmp_path / "cache"),
                "--no-progress"]  # fmt: skip
        assert main(args) == 0
        assert len(srv.chat_log()) == 18  # 9 documents + 9 queries
        maps = pd.read_parquet(tmp_path / "erm" / "test" / "maps.parquet")
        assert maps["doc_id"].tolist() == ["d6", "d7", "d8"] and list(maps.columns) == [
            "doc_id", "map_json", "text", "status"]  # fmt: skip
        qmaps = pd.read_parquet(tmp_path / "erm" / "val" / "query_maps.parquet")
        assert qmaps["doc_id"].tolist() == ["q3", "q4", "q5"]
        assert not (tmp_path / "erm" / "stats.json").exists()  # timings and cache hits are printed, not pinned
        assert (tmp_path / "erm" / "inputs.json").is_file()
        assert main(args) == 0  # DVC deletes and re-runs: answers come from the cache outside the output
        assert len(srv.chat_log()) == 18
    for path in (tmp_path / "erm").rglob("*"):
        assert path.is_dir() or SECRET.encode() not in path.read_bytes()
    params.write_text("erm:\n  name: openai_compatible\n  base_url: http://127.0.0.1:9/v1\n  model: m\n  api_key: x\n")
    assert guard(main, "python -m apex.erm.build", argv=args) == 2  # one line, exit status 2 (apex.core.cli)
