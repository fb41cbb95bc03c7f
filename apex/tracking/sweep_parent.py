"""A sweep's MLflow parent run: opened once, re-opened by `+resume=`, closed with the count of failed jobs.

The sweeper (`hydra_plugins.apex_sweeper`) drives it from the sweep's own process: `SweepParent.start` before the
first job, `close` in a `finally` after the launcher returned or raised. Jobs attach from any process or machine
with the parent id that reaches them as the environment variable APEX_PARENT_RUN_ID (`hydra.job.env_set`).

A job is one (cell, seed): `apex.cell` is the hash of its configuration without the seed. Children of the parent
are the job runs of every attempt (the first sweep and its resumes); a job counts as done when one of its runs
FINISHED *with its results* (`apex.tracking.lifecycle.has_results`). When the sweep ends, a child still RUNNING
belongs to a job that died without closing its run (SIGKILL, out of memory, a node lost, a SLURM cancel): it is
marked KILLED, unless its process may still be alive on another machine (a remote launcher whose sweep stopped
early), when it is left as it is and counted as not done. A new sweep or a resume first marks the experiment's
runs whose process is certainly gone (`settle_stale`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from apex.core.errors import ConfigError
from apex.core.secrets import scrub
from apex.tracking import names
from apex.tracking.lifecycle import close_run, has_results, running_runs, settle_stale, this_process_tags
from apex.tracking.mlflow_run import TrackingConfig, connect

log = logging.getLogger("apex.tracking")

PARENT_TAG = names.PARENT
PLANNED_TAG = names.SWEEP_JOBS_PLANNED  # set by the sweeper: how many (cell, seed) jobs the sweep command holds
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PAGE = 1000


@dataclass(frozen=True)
class SweepStatus:
    """What the parent's close found: jobs = distinct (cell, seed) among the children."""

    jobs: int  # jobs the sweep launched or planned, whichever is more
    finished: int
    failed: int  # jobs with no FINISHED run (a child that failed or was killed, or a job never started)
    marked_killed: int  # RUNNING children this close marked KILLED
    runs: int
    interrupted: bool = False  # a signal stopped the sweep

    @property
    def status(self) -> str:
        if self.failed == 0:  # a signal that came after the last job finished changes nothing
            return "FINISHED"
        return "KILLED" if self.interrupted else "FAILED"

    def line(self) -> str:
        return f"{self.finished} of {self.jobs} job(s) finished, {self.failed} not ({self.marked_killed} marked KILLED)"


def children(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Run]:
    """Every run whose parent is `parent_id`, following page tokens."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id], f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=_PAGE, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def job_key(run: Run) -> tuple[str, str] | None:
    """(cell, seed) of a job run, None for a run without the tags (not an apex job)."""
    cell, seed = run.data.tags.get(names.CELL), run.data.tags.get(names.SEED)
    return None if cell is None or seed is None else (cell, str(seed))


def finished_jobs(client: MlflowClient, experiment_id: str, parent_id: str) -> set[tuple[str, str]]:
    """(cell, seed) of every job with a FINISHED run with results under the parent: what `+resume=` skips."""
    done = set()
    for run in children(client, experiment_id, parent_id):
        key = job_key(run)
        if key is not None and has_results(run):
            done.add(key)
    return done


def resume_parent(client: MlflowClient, experiment_id: str, ref: str) -> Run:
    """The sweep parent by run id, run name (the latest of that name) or sweep folder name (`hydra.sweep.dir`'s
    last part, e.g. 2026-12-04_10-58-00); a clear error when there is none."""
    if _RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except MlflowException:
            run = None
        if run is not None:
            if run.data.tags.get(names.KIND) != names.KIND_SWEEP:
                raise ConfigError("resume", f"run {ref} is not a sweep parent (its tag apex.kind is not 'sweep')")
            return run
    quoted = ref.replace("'", "\\'")
    found = client.search_runs(
        [experiment_id],
        f"tags.`{names.KIND}` = '{names.KIND_SWEEP}' and attributes.run_name = '{quoted}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        folder = ref.removeprefix("sweep-")  # the name sweeps had before they were named after their preset
        order = ["attributes.start_time DESC"]
        sweeps = client.search_runs([experiment_id], "tags.`apex.kind` = 'sweep'", order_by=order, max_results=_PAGE)
        found = [run for run in sweeps if run.data.tags.get("apex.sweep_dir", "").rstrip("/").split("/")[-1] == folder]
    if not found:
        raise ConfigError(
            "resume", f"no sweep parent run with id, name or sweep folder {ref!r} in experiment {experiment_id}"
        )
    return found[0]


def mark_dead_children(client: MlflowClient, experiment_id: str, parent_id: str, reason: str) -> int:
    """Mark every RUNNING child KILLED (their processes are known to be gone); returns how many."""
    count = 0
    for run in children(client, experiment_id, parent_id):
        if run.info.status == "RUNNING":
            close_run(client, run.info.run_id, "KILLED", reason, f"its job ended without closing the run ({reason})")
            count += 1
    if count:
        log.warning("sweep %s: marked %d run(s) left RUNNING by dead jobs as KILLED (%s)", parent_id, count, reason)
    return count


def reopen(client: MlflowClient, experiment_id: str, parent_id: str) -> None:
    """Resume: the previous attempt is over, so its RUNNING children are dead; the parent runs again."""
    mark_dead_children(client, experiment_id, parent_id, "resume")
    client.update_run(parent_id, status="RUNNING")
    attempts = int(client.get_run(parent_id).data.tags.get(names.SWEEP_ATTEMPTS, "1")) + 1
    client.set_tag(parent_id, names.SWEEP_ATTEMPTS, str(attempts))


def close(
    client: MlflowClient, experiment_id: str, parent_id: str, jobs_ended: bool, interrupted: bool = False
) -> SweepStatus:
    """End the parent FINISHED when every job has a FINISHED run with results, else FAILED with the count of failed
    jobs (KILLED when a signal stopped the sweep).

    `jobs_ended`: every job's process is known to be gone (the launcher returned, or ran them on this machine),
    so RUNNING children are dead and are marked KILLED.
    """
    killed = mark_dead_children(client, experiment_id, parent_id, "sweep close") if jobs_ended else 0
    runs = children(client, experiment_id, parent_id)
    jobs: dict[tuple[str, str], bool] = {}
    for run in runs:
        key = job_key(run)
        if key is not None:
            jobs[key] = jobs.get(key, False) or has_results(run)
    finished = sum(jobs.values())
    planned = int(client.get_run(parent_id).data.tags.get(PLANNED_TAG, "0"))
    total = max(planned, len(jobs))
    result = SweepStatus(total, finished, total - finished, killed, len(runs), interrupted)
    for name, value in (("jobs", result.jobs), ("jobs_finished", finished), ("jobs_failed", result.failed)):
        client.set_tag(parent_id, f"{names.SWEEP_PREFIX}{name}", str(value))
    client.set_terminated(parent_id, result.status)
    log.info(
        "sweep parent %s %s: %d job(s), %d finished, %d failed (%d run(s) in all)",
        parent_id, result.status, result.jobs, finished, result.failed, result.runs,
    )  # fmt: skip
    return result


class SweepParent:
    """The parent run of one sweep (or of one more attempt at it, with `+resume=`)."""

    def __init__(self, tracking: TrackingConfig, run_id: str, experiment_id: str) -> None:
        self.client, self.uri = MlflowClient(tracking.uri), tracking.uri
        self.run_id, self.experiment_id = run_id, experiment_id

    @classmethod
    def start(cls, tracking: TrackingConfig, sweep_dir: str, overrides: str, launcher: str, resume: str | None):
        """Open a new parent, or re-open the one `resume` names (its id or run name)."""
        experiment_id = connect(tracking)
        client = MlflowClient(tracking.uri)
        settle_stale(client, running_runs(client, experiment_id), "next sweep")  # runs of SIGKILLed processes
        if resume:
            parent = resume_parent(client, experiment_id, resume)
            reopen(client, experiment_id, parent.info.run_id)
            for key, value in this_process_tags().items():
                client.set_tag(parent.info.run_id, key, value)
            log.info("resuming sweep %s (%s)", parent.info.run_name, parent.info.run_id)
            return cls(tracking, parent.info.run_id, experiment_id)
        tags = {
            "apex.kind": "sweep",
            "apex.sweep_dir": sweep_dir,
            "apex.sweep_overrides": scrub(overrides),
            "apex.sweep_launcher": launcher,
            "apex.sweep_attempts": "1",
            **this_process_tags(),  # the sweep's own process: a SIGKILLed sweep is found stale like a job
        }
        run = client.create_run(experiment_id, run_name=f"sweep-{sweep_dir.rstrip('/').split('/')[-1]}", tags=tags)
        log.info("MLflow sweep parent run %s (%s)", run.info.run_id, overrides)
        return cls(tracking, run.info.run_id, experiment_id)

    def finished_jobs(self) -> set[tuple[str, str]]:
        return finished_jobs(self.client, self.experiment_id, self.run_id)

    def record_planned(self, n_jobs: int) -> None:
        self.client.set_tag(self.run_id, PLANNED_TAG, str(n_jobs))

    def close(self, jobs_ended: bool, interrupted: bool = False) -> SweepStatus:
        return close(self.client, self.experiment_id, self.run_id, jobs_ended, interrupted)
