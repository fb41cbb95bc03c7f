"""Checks of the tracking store before any stage runs: reachable (a few seconds), inside its roots, not in the code.

`check_tracking(...)` runs first in every job (before the heavy imports, `apex.core.cli.job`), again in the recipe
and in the sweep callback (`connect`), so a dead tracking server fails a run in seconds, before data preparation or
any LLM request (MLflow's own client would retry for minutes, after the work). Read-only commands (`apex.report`)
pass `must_exist=True`: a missing database is reported, never created. Light on purpose: no MLflow, no torch.
"""

from __future__ import annotations

import urllib.error
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


def check_reachable(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """For an http(s) tracking server: GET /health must answer within `timeout_s` (any HTTP status counts)."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered: a proxy or an auth layer in front of a live server
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(
            f"tracking server {scrub(uri)} did not answer within {timeout_s:g} s ({scrub(str(reason))}); start it "
            f"(mlflow server ...) or point tracking.uri at a running one, e.g. sqlite:///experiments/mlflow.db"
        ) from None


def check_tracking(
    uri: str,
    experiment: str,
    artifact_root: str | None = None,
    *,
    must_exist: bool = False,
    timeout_s: float = HEALTH_TIMEOUT_S,
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
    check_reachable(uri, timeout_s)
