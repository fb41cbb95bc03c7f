"""Checks of the tracking store before any stage runs: reachable (a few seconds), inside its roots, not in the code.

`check_tracking(...)` runs first in every job (before the heavy imports, `apex.core.cli.job`), again in the recipe
and in the sweep callback (`connect`), so a dead tracking server fails a run in seconds, before data preparation or
any LLM request (MLflow's own client would retry for minutes, after the work). Read-only commands (`apex.report`)
pass `must_exist=True`: a missing database is reported, never created. Light on purpose: no MLflow, no torch.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import apex
from apex.core.errors import ConfigError, InputError, ServiceError
from apex.core.paths import child_path, inside
from apex.core.secrets import scrub

PACKAGE_DIR = Path(apex.__file__).resolve().parent
HEALTH_TIMEOUT_S = 5.0


class TrackingUnavailable(ServiceError):
    """The tracking server does not answer."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative to the working directory), else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_store_location(uri: str, artifact_root: str | None = None) -> None:
    """Refuse a database or artifact root inside the `apex` package: it would be committed with the code."""
    places = [("tracking.uri", sqlite_path(uri)), ("tracking.artifact_root", artifact_root)]
    for key, place in places:
        if place is None or "://" in str(place):
            continue
        if inside(place, PACKAGE_DIR):
            raise ConfigError(
                key,
                f"{scrub(str(place))} lies inside the package folder {PACKAGE_DIR} (it would be committed with the "
                f"code and mark every run git_dirty); use the default under experiments/ (git-ignored), e.g. "
                f"tracking.uri=sqlite:///experiments/mlflow.db",
            )


def split_credentials(uri: str) -> tuple[str, dict[str, str]]:
    """(the URI without its `user:password@`, the HTTP headers that carry them): urllib rejects userinfo in a URL
    ("nonnumeric port"), which once made a live server look dead. MLflow's MLFLOW_TRACKING_USERNAME/_PASSWORD (or
    _TOKEN) are used when the URL holds none, as MLflow itself does."""
    parts = urllib.parse.urlsplit(uri)
    user, password = parts.username, parts.password
    if user is None:
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    headers: dict[str, str] = {}
    if user is not None:
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/"), headers


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET; an HTTP error status is an answer, not a failure."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read(65536)
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read(65536)


def check_reachable(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """For an http(s) tracking server: it answers within `timeout_s`, it is an MLflow tracking server (its REST API
    answers in JSON), and it accepts the credentials (URL userinfo or MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    if not uri.startswith(("http://", "https://")):
        return
    base, headers = split_credentials(uri)
    probe = f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    try:
        _get(f"{base}/health", headers, timeout_s)
        status, body = _get(probe, headers, timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(
            f"tracking server {scrub(uri)} did not answer within {timeout_s:g} s ({scrub(str(reason))}); start it "
            f"(mlflow server ...) or point tracking.uri at a running one, e.g. sqlite:///experiments/mlflow.db"
        ) from None
    if status in (401, 403):
        raise ConfigError(
            "tracking.uri",
            f"the tracking server {scrub(uri)} refused the credentials (HTTP {status}); check the URL's user:password "
            f"(from an environment variable) or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD",
        )
    if not _is_mlflow_answer(body):
        raise ConfigError(
            "tracking.uri",
            f"{scrub(uri)} answers HTTP but is not an MLflow tracking server (GET /api/2.0/mlflow/experiments/"
            f"get-by-name gave HTTP {status} without MLflow's JSON); point it at `mlflow server` (its host:port)",
        )


def _is_mlflow_answer(body: bytes) -> bool:
    """MLflow's REST API answers JSON with `experiment` (found) or `error_code` (e.g. RESOURCE_DOES_NOT_EXIST)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and ("experiment" in answer or "error_code" in answer)


def check_tracking(
    uri: str,
    experiment: str,
    artifact_root: str | None = None,
    *,
    must_exist: bool = False,
    timeout_s: float = HEALTH_TIMEOUT_S,
    reachable: bool = True,
) -> None:
    """All of the module docstring's checks; raises `InputError` (bad place or name) or `TrackingUnavailable`."""
    check_store_location(uri, artifact_root)
    if artifact_root is not None and "://" not in artifact_root:
        child_path(artifact_root, experiment, "tracking.experiment")
    db = sqlite_path(uri)
    if must_exist and db is not None and not db.is_file():
        raise InputError(
            "no tracking database here (nothing was created); pass --tracking-uri (or set MLFLOW_TRACKING_URI) to "
            "the store your runs used, or run `python -m apex.run` first",
            file=str(db),
        )
    if reachable:
        check_reachable(uri, timeout_s)
