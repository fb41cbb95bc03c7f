"""One error contract for `apex.report`, `apex.export`, `apex.core.params_file` and the tracking pre-flight.

Each probe injects a failure and checks the exit status, the one `error:` line, and that no secret is printed and
nothing is written where it should not be. The tracking pre-flight is probed against small local HTTP servers: one
that is not MLflow, one that wants credentials (answering as MLflow's REST API does).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from apex_cli import REPO

from apex.core.cli import exit_status, one_line
from apex.core.errors import ConfigError
from apex.core.preflight import TrackingUnavailable, check_reachable, split_credentials

PASSWORD = "hunter2-Pass-77"


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO), **extra}


def command(module: str, *args: str, cwd: Path, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=environ or env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(done: subprocess.CompletedProcess, prog: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    error, status = done.stderr.strip().splitlines()[-2:]
    assert error.startswith(f"{prog}: error: "), done.stderr[-2000:]
    assert status == f"(exit status {done.returncode}; add --verbose for the traceback)"
    return error


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "mlflow"  # mlflow | html | auth

    def do_GET(self) -> None:
        if self.mode == "html":
            self._send(404, b"<html>not here</html>", "text/html")
        elif (
            self.mode == "auth"
            and self.headers.get("Authorization") != "Basic " + base64.b64encode(f"apex:{PASSWORD}".encode()).decode()
        ):
            self._send(401, b'{"error_code": "UNAUTHENTICATED"}', "application/json")
        elif self.path.startswith("/health"):
            self._send(200, b"OK", "text/plain")
        else:
            self._send(404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}', "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


def test_preflight_knows_mlflow_from_another_web_server(server):
    url, handler = server
    check_reachable(url)  # answers like MLflow's REST API
    handler.mode = "html"
    with pytest.raises(ConfigError, match="is not an MLflow tracking server"):
        check_reachable(url)


def test_preflight_uses_and_checks_credentials_and_never_prints_them(server):
    url, handler = server
    handler.mode = "auth"
    host = url.removeprefix("http://")
    check_reachable(f"http://apex:{PASSWORD}@{host}")  # once reported "did not answer" (urllib rejects userinfo)
    with pytest.raises(ConfigError, match=r"refused the credentials \(HTTP 401\)") as raised:
        check_reachable(f"http://apex:wrong-password-1@{host}")
    assert "wrong-password-1" not in one_line(raised.value) and exit_status(raised.value) == 2
    assert split_credentials(f"http://apex:{PASSWORD}@{host}/")[0] == url


def test_dead_server_is_a_service_error_without_the_password():
    with pytest.raises(TrackingUnavailable) as raised:
        check_reachable(f"http://apex:{PASSWORD}@127.0.0.1:9", timeout_s=2)
    assert PASSWORD not in one_line(raised.value) and exit_status(raised.value) == 3


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str, str]:
    """A tracking database with one apex job run left RUNNING (as a killed job leaves it)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("apex", artifact_location=(folder / "art").as_uri())
    run = client.create_run(experiment, tags={"apex.kind": "job"}, run_name="probe")
    return folder, uri, run.info.run_id


def test_export_of_an_unknown_run_exits_2_with_one_line(store):
    folder, uri, _ = store
    done = command("apex.export", "no-such-run", "--tracking-uri", uri, cwd=folder)
    assert done.returncode == 2
    assert "no run with id 'no-such-run'" in error_line(done, "python -m apex.export")


@pytest.mark.slow  # a subprocess importing MLflow: ~5 s idle, far more on a shared machine
def test_export_refuses_a_run_that_is_not_finished_unless_forced(store):
    folder, uri, run_id = store
    done = command("apex.export", run_id, "--tracking-uri", uri, cwd=folder)
    assert done.returncode == 2
    assert f"run {run_id} is RUNNING, not FINISHED" in error_line(done, "python -m apex.export")
    forced = command("apex.export", run_id, "--tracking-uri", uri, "--force", cwd=folder)
    assert "is RUNNING, not FINISHED: exporting it because of --force" in forced.stderr
    assert forced.returncode == 2 and "not an apex job run" in error_line(forced, "python -m apex.export")


@pytest.mark.slow  # a subprocess importing MLflow: ~5 s idle, far more on a shared machine
def test_export_in_an_empty_folder_creates_no_database(tmp_path):
    done = command("apex.export", "abc", cwd=tmp_path, environ={**env(), "MLFLOW_TRACKING_URI": ""})
    assert done.returncode == 2 and "no tracking database here" in error_line(done, "python -m apex.export")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # a subprocess importing MLflow: ~5 s idle, far more on a shared machine
def test_export_against_a_dead_server_fails_fast_without_the_password(tmp_path):
    uri = f"http://apex:{PASSWORD}@127.0.0.1:9"
    for args, environ in ((["--tracking-uri", uri], env()), ([], env(MLFLOW_TRACKING_URI=uri))):
        done = command("apex.export", "abc", *args, cwd=tmp_path, environ=environ)
        assert done.returncode == 3 and "did not answer" in error_line(done, "python -m apex.export")
        assert PASSWORD not in done.stdout + done.stderr


def test_report_of_an_unknown_sweep_exits_2_with_one_line(store):
    folder, uri, _ = store
    done = command("apex.report", "--tracking-uri", uri, "--sweep", "no-such-sweep", "--no-log", cwd=folder)
    assert done.returncode == 2
    assert "no-such-sweep" in error_line(done, "python -m apex.report")


@pytest.mark.parametrize("name", ["../../../x", pytest.param("..", marks=pytest.mark.slow)])
def test_register_name_that_escapes_is_refused_before_any_work(tmp_path, name):
    out = tmp_path / "exports"
    done = command("apex.report", "--register", name, "--export-root", str(out), cwd=tmp_path)
    assert done.returncode == 2 and "--register" in error_line(done, "python -m apex.report")
    assert not any(tmp_path.iterdir()) and not (tmp_path.parent.parent / "x").exists()


@pytest.mark.slow  # a subprocess importing MLflow: ~5 s idle, far more on a shared machine
def test_params_file_typo_names_the_close_key(tmp_path):
    done = command("apex.core.params_file", "trainig.lr=1e-3", "--params", str(tmp_path / "p.yaml"), cwd=REPO)
    assert done.returncode == 2
    assert "did you mean 'training.lr'?" in error_line(done, "python -m apex.core.params_file")
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.slow  # a subprocess importing MLflow: ~5 s idle, far more on a shared machine
def test_dvc_stage_command_names_the_close_key(tmp_path):
    params = json.loads(json.dumps({"dataset": {"name": "squad", "max_documnets": 10}}))
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    done = command(
        "apex.data.prepare", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out"), cwd=REPO
    )
    assert done.returncode == 2
    assert "did you mean 'dataset.max_documents'?" in error_line(done, "python -m apex.data.prepare")


def test_a_killed_sweep_worker_is_one_line_with_the_resume_command(monkeypatch):
    class TerminatedWorkerError(RuntimeError):  # joblib/loky's type, matched by name (joblib is not imported)
        pass

    monkeypatch.setenv("APEX_PARENT_RUN_ID", "0123abcd")
    error = TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated. SIGKILL(-9)")
    assert exit_status(error) == 3
    line = one_line(error)
    assert "a sweep worker process died" in line and "resume=0123abcd" in line and "\n" not in line


def _connect(uri: str, folder: str, queue) -> None:
    try:
        from apex.tracking.config import TrackingConfig
        from apex.tracking.mlflow_run import connect

        queue.put(connect(TrackingConfig(uri=uri, artifact_root=f"{folder}/art")))
    except Exception as error:  # reported to the parent, which fails the test with it
        queue.put(f"{type(error).__name__}: {error}")


@pytest.mark.slow  # three processes migrate one new database: ~30 s idle, more on a shared machine
def test_first_jobs_on_a_new_sqlite_database_take_turns(tmp_path):
    """MLflow's migration of a new database raced ("duplicate column name: step") when two first jobs started at
    once; `connect` holds a lock beside the file while the first creates it."""
    import multiprocessing

    import mlflow  # noqa: F401  imported once, before the fork: the children start at the same moment

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    uri = f"sqlite:///{tmp_path}/new.db"
    workers = [context.Process(target=_connect, args=(uri, str(tmp_path), queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    answers = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert len(set(answers)) == 1 and not str(answers[0]).endswith("Error"), answers  # one experiment id, no error
