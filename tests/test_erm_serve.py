"""The local-server lifecycle (`apex.erm.serve`): started, healthy, stopped; no orphan after SIGINT, SIGTERM or a
crash of the run. The server here is the fake OpenAI-compatible one (`tests/llm_server.py`) run as a command, so
these tests need no llama.cpp; the slow test `test_erm_local_llm.py` runs the real one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from apex.core.errors import ConfigError, ServiceError
from apex.erm import ErmConfig
from apex.erm.serve import LocalServer, check_servable, free_port, llama_cpp_command, served
from apex.erm.view import map_quality

REPO = Path(__file__).resolve().parents[1]
FAKE = str(REPO / "tests" / "llm_server.py")


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def fake_server(port: int) -> LocalServer:
    return LocalServer([sys.executable, FAKE, "--port", str(port)], f"http://127.0.0.1:{port}/v1", startup_timeout_s=30)


def test_start_answers_then_stop_leaves_no_process() -> None:
    with fake_server(free_port()) as srv:
        pid = srv.process.pid
        assert alive(pid) and os.getpgid(pid) == pid  # its own process group: Ctrl-C reaches only the run
        import urllib.request

        with urllib.request.urlopen(f"{srv.base_url}/models", timeout=5) as resp:
            assert resp.status == 200
    assert wait_gone(pid, 1.0)


def test_a_server_that_exits_at_start_is_one_clear_error() -> None:
    srv = LocalServer(
        [sys.executable, "-c", "import sys; print('no model here'); sys.exit(4)"], "http://127.0.0.1:9/v1"
    )
    with pytest.raises(ServiceError, match=r"exited with status 4: no model here"):
        srv.start()


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from apex.erm.serve import LocalServer
    with LocalServer([sys.executable, {fake!r}, "--port", "{port}"], "http://127.0.0.1:{port}/v1") as srv:
        print(srv.process.pid, flush=True)
        time.sleep(120)
    """
)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphan_when_the_run_is_interrupted_terminated_or_killed(tmp_path: Path, how: signal.Signals) -> None:
    script = tmp_path / "run.py"
    script.write_text(_CHILD.format(repo=str(REPO), fake=FAKE, port=free_port()))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(run.stdout.readline())
        assert alive(server_pid)
        run.send_signal(how)
        run.wait(timeout=30)
        # SIGKILL: no Python code runs; the kernel's parent-death signal stops the server.
        assert wait_gone(server_pid), f"server {server_pid} outlived the run after {how.name}"
    finally:
        run.kill()


def test_serve_config_rules() -> None:
    base = {"name": "openai_compatible", "model": "m", "serve": True}
    ErmConfig.from_cfg({**base, "base_url": "http://127.0.0.1:0/v1"}).validate()
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1"):
        ErmConfig.from_cfg({**base, "base_url": "http://10.0.0.5:8000/v1"}).validate()
    with pytest.raises(ConfigError, match="port 0"):
        ErmConfig.from_cfg({**base, "serve": False, "base_url": "http://127.0.0.1:0/v1"}).validate()
    with pytest.raises(ConfigError, match="online"):
        ErmConfig.from_cfg({**base, "base_url": "http://127.0.0.1:0/v1", "mode": "batch"}).validate()
    with pytest.raises(ConfigError, match="serve"):  # only openai_compatible has the key
        ErmConfig.from_cfg({"name": "gpt4o", "serve": True}).validate()


def test_missing_server_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    cfg = ErmConfig.from_cfg({"name": "openai_compatible", "model": "m", "base_url": "http://127.0.0.1:0/v1",
                              "serve": True})  # fmt: skip
    with pytest.raises(ServiceError, match=r'pip install -e "\.\[llm\]"'), served(cfg):
        pass
    with pytest.raises(ServiceError, match="llama-cpp-python"):
        check_servable(cfg)


def test_not_serving_yields_the_config_unchanged() -> None:
    cfg = ErmConfig.from_cfg({"name": "openai_compatible", "model": "m", "base_url": "http://127.0.0.1:8000/v1"})
    with served(cfg) as same:
        assert same is cfg


def test_llama_cpp_command_serves_the_model_under_the_configured_name(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    cfg = ErmConfig.from_cfg({"name": "openai_compatible", "model": "tiny", "base_url": "http://127.0.0.1:0/v1",
                              "serve": True, "serve_model_file": str(gguf), "serve_threads": 3,
                              "serve_n_ctx": 2048})  # fmt: skip
    cmd = llama_cpp_command(cfg, 4321)
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert args == {"--model": str(gguf), "--model_alias": "tiny", "--host": "127.0.0.1", "--port": "4321",
                    "--n_ctx": "2048", "--n_threads": "3", "--n_threads_batch": "3", "--verbose": "false"}  # fmt: skip


def test_map_quality_line_and_metrics() -> None:
    stats = {"view_mapped": 7, "view_fallback_empty": 2, "view_fallback_failed": 1, "reasks": 4, "requests_sent": 14}
    line, metrics = map_quality(stats)
    assert line == "9 valid of 10 documents (7 used, 2 too short), 1 failed; 3 kept their plain text (30.0%); " \
        "4 re-asks, 14 requests this run"  # fmt: skip
    assert metrics == {"erm_valid_maps": 9.0, "erm_plain_text_documents": 3.0, "erm_plain_text_pct": 30.0}
    line, _ = map_quality({"view_mapped": 3})
    assert line.endswith("maps from the store (no request this run)")
