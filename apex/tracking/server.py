"""A local `mlflow server` for tests, benchmarks and one-machine parallel sweeps (docs/sweeps.md).

    with local_server(Path("experiments/server")) as uri:   # http://127.0.0.1:<free port>
        ...  # python -m apex.run -m ... tracking.uri=<uri>

It binds 127.0.0.1 only, stores runs in `<root>/mlflow.db` (SQLite: the server is the only writer, so parallel
jobs are safe) and proxies artifacts into `<root>/artifacts` (clients upload through the server, so jobs on other
machines need no shared file system). Startup takes about 6 s; `/health` says when it is ready.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(root: Path, port: int) -> list[str]:
    """The `mlflow server` command line (the README's, with this root and port)."""
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    return [
        mlflow_cli, "server",
        "--backend-store-uri", f"sqlite:///{root.resolve()}/mlflow.db",
        "--artifacts-destination", str((root / "artifacts").resolve()),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def wait_healthy(uri: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode} before answering {uri}/health")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {uri} did not answer /health within {timeout:.0f} s")


@contextmanager
def local_server(root: Path, port: int | None = None, timeout: float = 120.0) -> Iterator[str]:
    """Start `mlflow server` on 127.0.0.1, yield its URI once healthy, stop it (and its workers) on exit."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(root / "server.log", "ab") as log_file:
        process = subprocess.Popen(
            server_command(root, port), stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_healthy(uri, process, timeout)
            yield uri
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn/gunicorn workers included), then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=10)
