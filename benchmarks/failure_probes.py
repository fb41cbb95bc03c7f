"""Inject the expected failures of issues 19 and 22 and print what each command does: exit status, first line, time.

    python benchmarks/failure_probes.py            # about 2-3 minutes on 2 shared cores (mostly Python imports)

Every probe runs in a fresh temporary folder; after each, the folder is searched for the probe's password (no secret
in any file or output) and for an MLflow database the probe must not create. Times are upper bounds measured on a
shared machine. The store and cache probes (damage injected into their files) run in-process.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "hunter2-Pass-77"


class NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>a web server, not MLflow</html>"
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve() -> str:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def leaked(folder: Path, text: str) -> bool:
    """The password in any file under `folder` or in the output."""
    if PASSWORD in text:
        return True
    return any(PASSWORD.encode() in p.read_bytes() for p in folder.rglob("*") if p.is_file())


def probe(name: str, module: str, *args: str, setup: Callable[[Path], None] | None = None, **extra: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if setup:
            setup(folder)
        before = {p for p in folder.rglob("*")}
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONPATH": str(REPO),
            **extra,
        }
        env.pop("MLFLOW_TRACKING_URI", None) if "MLFLOW_TRACKING_URI" not in extra else None
        run_args = [f"paths.experiments={folder}", f"hydra.run.dir={folder}/run"] if module == "apex.run" else []
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", module, *run_args, *args], cwd=folder if module != "apex.run" else REPO, env=env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        lines = [ln for ln in done.stderr.splitlines() if ": error: " in ln] or done.stderr.strip().splitlines()[-1:]
        created = sorted(str(p.relative_to(folder)) for p in set(folder.rglob("*")) - before)
        out = done.stdout + done.stderr
        return [name, str(done.returncode), (lines[0] if lines else "")[:150], f"{seconds:.1f}",
                "LEAK" if leaked(folder, out) else "none", ", ".join(created)[:40] or "nothing"]  # fmt: skip


def mlflow_store(folder: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    experiment = client.create_experiment("apex", artifact_location=(folder / "art").as_uri())
    run = client.create_run(experiment, tags={"apex.kind": "job"}, run_name="left-running")
    (folder / "run_id").write_text(run.info.run_id)


def main() -> None:
    web = serve()
    dead = f"http://apex:{PASSWORD}@127.0.0.1:9"
    rows = [
        probe("typo trainig.lr", "apex.run", "trainig.lr=1e-3"),
        probe("typo +trainig.lr", "apex.run", "+trainig.lr=1e-3"),
        probe("unknown option erm=spcy", "apex.run", "erm=spcy"),
        probe("training.lr=nan", "apex.run", "training.lr=nan"),
        probe("training.lr=inf", "apex.run", "training.lr=inf"),
        probe("training.temperature=nan", "apex.run", "training.temperature=nan"),
        probe("training.grad_clip=nan", "apex.run", "training.grad_clip=nan"),
        probe("seed=-1", "apex.run", "seed=-1"),
        probe("mysql:// tracking URI", "apex.run", "tracking.uri=mysql://localhost/apex"),
        probe("conflict dataset.queries=llm, erm=none", "apex.run", "dataset.queries=llm"),
        probe("conflict eval.view=erm, erm=none", "apex.run", "eval.view=erm"),
        probe("swept value nan", "apex.run", "-m", "training.lr=1e-4,nan"),
        probe("password in tracking.uri override", "apex.run", f"tracking.uri={dead}"),
        probe("dead tracking server", "apex.run", "tracking.uri=http://127.0.0.1:9"),
        probe("non-MLflow HTTP server", "apex.run", f"tracking.uri={web}"),
        probe("params_file typo", "apex.core.params_file", "trainig.lr=1", "--params", "p.yaml"),
        probe("export: empty folder", "apex.export", "abc"),
        probe("export: dead URI with password", "apex.export", "abc", "--tracking-uri", dead),
        probe("export: MLFLOW_TRACKING_URI password", "apex.export", "abc", MLFLOW_TRACKING_URI=dead),
        probe("export: non-MLflow server", "apex.export", "abc", "--tracking-uri", web),
        probe(
            "export: no such run",
            "apex.export",
            "no-such-run",
            "--tracking-uri",
            "sqlite:///mlflow.db",
            setup=mlflow_store,
        ),
        probe(
            "report: no such sweep",
            "apex.report",
            "--sweep",
            "no-such-sweep",
            "--tracking-uri",
            "sqlite:///mlflow.db",
            "--no-log",
            setup=mlflow_store,
        ),
        probe("report: --register ../../../x", "apex.report", "--register", "../../../x", "--export-root", "exports"),
        probe("report: empty folder", "apex.report"),
    ]
    header = ["failure injected", "exit", "first line", "s", "secret", "created in the folder"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")


if __name__ == "__main__":
    main()
