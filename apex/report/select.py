"""Find the runs a report covers: a sweep parent's children, or job runs matching a filter string.

Only `MlflowClient` calls are used, so the same code reads the embedded sqlite database and a tracking server.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from apex.report.config import ReportConfig
from apex.tracking import names
from apex.tracking.lifecycle import has_results, settle_stale

log = logging.getLogger("apex.report")

KIND_TAG = names.KIND
PARENT_TAG = names.PARENT
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PAGE = 1000


class SelectionError(LookupError):
    """No sweep or no runs match what was asked for; the message says what was searched."""


@dataclass
class Selection:
    """The job runs of one report and where they came from."""

    name: str
    experiment_id: str
    parent_run_id: str | None
    runs: list[Run]
    description: str
    notes: list[str] = field(default_factory=list)


def redact_uri(uri: str) -> str:
    """The tracking URI without any user:password part, safe to write into reports."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise SelectionError(f"cannot search for a name holding both quote characters: {value!r}")


def search_all(
    client: MlflowClient, experiment_id: str, filter_string: str, order_by: list[str] | None = None
) -> list[Run]:
    """Every run matching `filter_string`, following page tokens."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=_PAGE, order_by=order_by, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SelectionError(f"no MLflow experiment named {name!r}")
    return experiment.experiment_id


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("._") or "sweep"


def find_parent(client: MlflowClient, config: ReportConfig) -> Run:
    """The sweep parent run: by id, by run name, or the latest `apex.kind=sweep` run of the experiment."""
    if config.sweep is not None and _RUN_ID.match(config.sweep):
        try:
            return client.get_run(config.sweep)
        except MlflowException:
            log.info("no run with id %s; trying it as a run name", config.sweep)
    experiment_id = _experiment_id(client, config.experiment)
    sweep_filter = f"tags.`{KIND_TAG}` = 'sweep'"
    if config.sweep is not None:
        sweep_filter += f" and attributes.run_name = {_quote(config.sweep)}"
    found = search_all(client, experiment_id, sweep_filter, order_by=["attributes.start_time DESC"])
    if not found:
        what = f"named {config.sweep!r}" if config.sweep else "at all"
        raise SelectionError(f"no sweep parent run (tag {KIND_TAG}=sweep) {what} in experiment {config.experiment!r}")
    if len(found) > 1 and config.sweep is not None:
        log.warning(
            "%d sweep parents are named %r; using the latest, %s", len(found), config.sweep, found[0].info.run_id
        )
    return found[0]


def _keep_finished(runs: list[Run], notes: list[str]) -> list[Run]:
    kept = [r for r in runs if has_results(r)]  # FINISHED and ended by its job (apex.tracking.lifecycle)
    skipped: dict[str, int] = {}
    for run in runs:
        if not has_results(run):
            status = run.info.status if run.info.status != "FINISHED" else "FINISHED without results"
            skipped[status] = skipped.get(status, 0) + 1
    for status, count in sorted(skipped.items()):
        message = f"skipped {count} run(s) with status {status} (only FINISHED runs with results are reported)"
        log.warning(message)
        notes.append(message)
    return kept


def select_runs(client: MlflowClient, config: ReportConfig) -> Selection:
    """Resolve the config's sweep / filter into the list of finished job runs to report on."""
    notes: list[str] = []
    if config.filter is not None:
        experiment_id = _experiment_id(client, config.experiment)
        found = search_all(client, experiment_id, config.filter)
        jobs = [r for r in found if r.data.tags.get(KIND_TAG) != "sweep"]
        if len(jobs) < len(found):
            notes.append(f"ignored {len(found) - len(jobs)} sweep parent run(s) matched by the filter")
        digest = hashlib.sha256(config.filter.encode()).hexdigest()[:8]
        name = config.name or f"filter-{digest}"
        description = f"runs of experiment {config.experiment!r} matching filter {config.filter!r}"
        parent_id = None
    else:
        parent = find_parent(client, config)
        experiment_id = parent.info.experiment_id
        parent_id = parent.info.run_id
        jobs = search_all(client, experiment_id, f"tags.`{PARENT_TAG}` = '{parent_id}'")
        name = config.name or _safe_name(parent.info.run_name or parent_id)
        description = f"children of sweep parent run {parent.info.run_name!r} ({parent_id})"
    stale = settle_stale(client, [r for r in jobs if r.info.status == "RUNNING"], "report")
    if stale:  # their processes are gone: never left RUNNING (they stay out of the report either way)
        notes.append(f"marked {stale} run(s) left RUNNING by a dead process KILLED")
    runs = _keep_finished(jobs, notes)
    if not runs:
        raise SelectionError(f"no finished job runs among {description}")
    log.info("selected %d finished run(s): %s", len(runs), description)
    return Selection(name, experiment_id, parent_id, runs, description, notes)
