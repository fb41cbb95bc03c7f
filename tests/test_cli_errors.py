"""Every expected failure of a command ends with one `error:` line, one status line and a documented exit status.

Exit statuses (apex.core.cli): 2 bad input / config / command line, 3 service unavailable, 1 a bug (traceback shown).
Most probes here fail before the heavy imports, so each costs about a second; one goes through the recipe.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apex_cli import REPO
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from apex.core.cli import exit_status, one_line
from apex.core.errors import InputError, ServiceError

KEY = "sk-proj-cmdline0123456789abcdef"
PASSWORD = "hunter2-Pass-77"


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def run_apex(tmp: Path, *overrides: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m apex.run` with every store under `tmp`; unlike `apex_cli.run_apex`, `overrides` come last (win)."""
    stores = [f"paths.experiments={tmp}", f"paths.data={tmp}/data", "torch_threads=1", f"hydra.run.dir={tmp}/run"]
    cmd = [sys.executable, "-m", "apex.run", *stores, *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def error_lines(done: subprocess.CompletedProcess, prog: str = "python -m apex.run") -> str:
    """The `error:` line; asserts the two-line format and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    error, status = done.stderr.strip().splitlines()[-2:]
    assert error.startswith(f"{prog}: error: "), done.stderr[-2000:]
    assert status == f"(exit status {done.returncode}; add --verbose for the traceback)"
    return error


@pytest.mark.parametrize(
    ("override", "secret", "key"),
    [
        (f"+erm.api_key={KEY}", KEY, "erm.api_key"),
        (f"erm.base_url=http://apex:{PASSWORD}@127.0.0.1:8000/v1", PASSWORD, "erm.base_url"),
        (f"erm.base_url=http://127.0.0.1:8000/v1?key={PASSWORD}", PASSWORD, "erm.base_url"),
    ],
)
def test_credential_on_the_command_line_is_refused_before_hydra_writes_anything(tmp_path, override, secret, key):
    done = run_apex(tmp_path, "erm=openai_compatible", "erm.model=m", override, env=env())
    assert done.returncode == 2
    assert f"'{key}' holds a credential" in done.stderr and "nothing was written" in done.stderr
    assert secret not in done.stdout + done.stderr
    assert not any(tmp_path.iterdir()), list(tmp_path.rglob("*"))  # no Hydra output folder, no DB, no cache


def test_dead_tracking_server_fails_in_seconds_before_any_data_work(tmp_path):
    started = time.perf_counter()
    done = run_apex(tmp_path, "experiment=smoke", "tracking.uri=http://127.0.0.1:9", env=env())
    seconds = time.perf_counter() - started
    assert done.returncode == 3
    assert "tracking server http://127.0.0.1:9 did not answer" in error_lines(done)
    assert seconds < 30  # an upper bound on a shared machine (~3 s idle): no data, model or MLflow work
    assert not any(tmp_path.iterdir())  # checked before Hydra: no output folder, no data, no cache


def test_verbose_shows_the_traceback(tmp_path):
    done = run_apex(tmp_path, "tracking.uri=http://127.0.0.1:9", "--verbose", env=env())
    assert done.returncode == 3
    assert "Traceback" in done.stderr and "TrackingUnavailable" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("python -m apex.run: error: tracking server")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("tracking.experiment=../../../../x", "tracking.experiment: '../../../../x' is not a plain name"),
        ("tracking.uri=sqlite:///apex/x.db", "lies inside the package folder"),
        ("training.no_such_key=1", "no_such_key"),
        ("training.lr=abc", "training.lr"),
    ],
)
def test_config_errors_exit_2_with_the_key_named(tmp_path, override, fragment):
    done = run_apex(tmp_path, override, env=env())
    assert done.returncode == 2
    assert fragment in error_lines(done)
    assert not (REPO / "apex" / "x.db").exists() and not (Path("/") / "x").exists()


@pytest.mark.slow  # goes through the recipe's imports (~30 s on a shared machine)
def test_bad_byte_in_the_data_file_names_file_line_and_byte_offset(tmp_path):
    data = tmp_path / "squad.json.gz"
    raw = b'{"version": "1.1", "data": [{"title": "T\xff", "paragraphs": []}]}'
    data.write_bytes(gzip.compress(raw))
    done = run_apex(tmp_path, "experiment=smoke", f"dataset.path={data}", env=env())
    assert done.returncode == 2
    error, offset = error_lines(done), raw.index(b"\xff")
    assert str(data) in error and "line 1" in error and f"byte offset {offset}" in error


def test_report_without_a_database_reports_it_and_creates_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "apex.report"], cwd=tmp_path, env={**env(), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        "experiments/mlflow.db" in error_lines(done, "python -m apex.report") and "no tracking database" in done.stderr
    )
    assert not (tmp_path / "experiments").exists()


def test_exit_statuses_and_one_line_messages():
    assert exit_status(InputError("bad", file="f.jsonl", record="line 3", field="text")) == 2
    assert exit_status(ServiceError("down")) == 3
    assert exit_status(KeyboardInterrupt()) == 130
    assert exit_status(RuntimeError("bug")) == 1
    wrapped = ConfigCompositionException("Error merging override training.lr=abc")
    wrapped.__cause__ = ValidationError("Value 'abc' could not be converted to Float\\n    full_key: training.lr")
    assert exit_status(wrapped) == 2
    line = one_line(wrapped)
    assert "\n" not in line and "training.lr" in line and "could not be converted" in line
    assert one_line(ServiceError(f"server http://u:{PASSWORD}@h/v1 is down")) == "server http://***@h/v1 is down"


def test_long_messages_are_cut_but_never_their_resume_command():
    command = "python -m apex.run -m " + " ".join(f"dataset.option_{i}=value_{i}" for i in range(60)) + " +resume=ab12"
    line = one_line(ServiceError(f"tracking server gone {'x' * 900}; resume with: {command}"))
    assert line.endswith(f"resume with: {command}")  # whole, to be copied
    assert len(line) < 700 + len(command) and "..." in line  # the text before it is shortened
    plain = one_line(ServiceError("y" * 900))  # no command: cut at 600 characters
    assert plain.endswith("y ...") and len(plain) == 604
