"""Caches under concurrency: two processes that need the same entry at once compute it once; a killed holder blocks
no one and leaves no partial entry. Real processes (subprocess), not threads: the locks are per process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from llm_server import FakeLLMServer

from apex.core.integrity import SEAL_FILE
from apex.erm import ErmConfig, build_maps

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# A job that asks the base-embedding cache for the vectors of one fixed data set. Its encoder appends its pid to
# `calls.log` on every encode call; with BLOCK=1 the first call waits for the test's `release` file, so the test
# controls how long this process holds the cache lock.
EMBED_JOB = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from test_sampling_fakes import FakeEncoder, random_tables
    from apex.sampling import BaseEmbeddingCache
    work, cache_dir = Path(sys.argv[1]), sys.argv[2]
    queries, documents, _, fake = random_tables(40, 60, 16, seed=3)

    class CountingEncoder(FakeEncoder):
        def encode(self, texts, kind, show_progress=False):
            with open(work / "calls.log", "a") as log:
                log.write(f"{os.getpid()} {kind}\\n")
            if os.environ.get("BLOCK") == "1":
                (work / f"encoding-{os.getpid()}").touch()
                while not (work / "release").exists():
                    time.sleep(0.02)
            return super().encode(texts, kind, show_progress)

    encoder = CountingEncoder(fake.vectors["query"], fake.vectors["document"])
    (work / f"ready-{os.getpid()}").touch()
    got = BaseEmbeddingCache(cache_dir).load_or_encode(encoder, queries, documents, view="plain")
    print(json.dumps({"pid": os.getpid(), "hit": got.cache_hit, "sum": float(got.documents.sum())}))
    """
)


def _start(work: Path, script: Path, block: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLOCK": "1" if block else "0"}
    cmd = [sys.executable, str(script), str(work), str(work / "cache"), str(TESTS)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _calls(work: Path) -> list[tuple[int, str]]:
    lines = (work / "calls.log").read_text().split()
    return [(int(pid), kind) for pid, kind in zip(lines[::2], lines[1::2], strict=True)]


def test_two_processes_same_base_embeddings_encode_once(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(EMBED_JOB)
    first = _start(tmp_path, script, block=True)
    _wait_for(tmp_path / f"encoding-{first.pid}", first)  # the first holds the lock, mid-encode
    second = _start(tmp_path, script, block=False)
    _wait_for(tmp_path / f"ready-{second.pid}", second)
    time.sleep(1.0)  # the second is now blocked on the lock (it would have finished by now without one)
    assert second.poll() is None, "the second process did not wait for the first"
    (tmp_path / "release").touch()
    a, b = _result(first), _result(second)
    assert (a["hit"], b["hit"]) == (False, True)  # one computed, the other read its entry
    assert a["sum"] == b["sum"]
    assert _calls(tmp_path) == [(first.pid, "query"), (first.pid, "document")]  # the encoder ran in one process


@pytest.mark.slow
def test_holder_killed_mid_encode_releases_the_lock_and_leaves_no_entry(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(EMBED_JOB)
    first = _start(tmp_path, script, block=True)
    _wait_for(tmp_path / f"encoding-{first.pid}", first)
    second = _start(tmp_path, script, block=False)
    _wait_for(tmp_path / f"ready-{second.pid}", second)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    b = _result(second)
    assert b["hit"] is False  # the killed job stored nothing: the waiter computed the entry itself
    assert [pid for pid, _ in _calls(tmp_path)] == [first.pid, second.pid, second.pid]
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != ".locks"]  # locks live on
    assert len(entries) == 1 and not entries[0].name.startswith(".")  # one whole entry, no temporary folder
    # the entry's files and its seal (content hash written last: apex.core.integrity)
    assert {p.name for p in entries[0].iterdir()} == {"queries.npy", "documents.npy", "manifest.json", SEAL_FILE}
    assert np.load(entries[0] / "documents.npy").shape == (60, 16)


ERM_JOB = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import pandas as pd
    from apex.erm import ErmConfig, build_maps
    base_url, cache_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    work = Path(cache_dir).parent
    (work / f"ready-{os.getpid()}").touch()
    while not (work / "go").exists():  # both jobs start asking at the same moment
        time.sleep(0.01)
    texts = [f"Document Alpha{i} mentions Beta{i} and Gamma{i}." for i in range(n)]
    cfg = ErmConfig.from_cfg({"name": "openai_compatible", "base_url": base_url, "model": "m",
                              "concurrency": 4, "timeout_s": 30})
    items = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "text": texts})
    result = build_maps(items, cfg, cache_dir, progress=False)
    print(json.dumps({"sent": result.stats["requests_sent"], "ok": int(result.stats["n_ok"])}))
    """
)


def test_two_processes_same_erm_answers_pay_each_request_once(tmp_path: Path) -> None:
    n_docs = 24
    script = tmp_path / "erm_job.py"
    script.write_text(ERM_JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test-concurrency-0123456789"}
    with FakeLLMServer(latency_s=0.2) as srv:
        cmd = [sys.executable, str(script), srv.base_url, str(tmp_path / "cache"), str(n_docs)]
        procs = [
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for proc in procs:
            _wait_for(tmp_path / f"ready-{proc.pid}", proc)
        (tmp_path / "go").touch()
        results = [_result(p) for p in procs]
        per_doc = pd.Series([r["doc"] for r in srv.chat_log()]).value_counts()
    assert len(per_doc) == n_docs and per_doc.max() == 1  # every document asked for exactly once, in all
    assert sorted(r["sent"] for r in results) == [0, n_docs]
    assert all(r["ok"] == n_docs for r in results)


def test_erm_build_in_one_process_still_works_with_the_lock(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        cfg = ErmConfig.from_cfg({"name": "openai_compatible", "base_url": srv.base_url, "model": "m"})
        items = pd.DataFrame({"id": ["a", "b"], "text": ["Alice met Bob.", "Carol saw Dave."]})
        os.environ.setdefault("OPENAI_API_KEY", "sk-test-concurrency-0123456789")
        first = build_maps(items, cfg, tmp_path, progress=False)
        again = build_maps(items, cfg, tmp_path, progress=False)  # the lock is re-entrant across calls
    assert first.stats["requests_sent"] == 2 and again.stats["requests_sent"] == 0
