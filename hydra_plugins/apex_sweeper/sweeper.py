"""apex's sweeper: the grid of Hydra's basic sweeper (same `hydra.sweeper.params`, same `a=1,2` grammar) plus the
sweep's MLflow parent run, written against Hydra's public plugin interfaces only (`Sweeper`, `Plugins`, the
override parser, the config loader). Hydra loads sweepers only from the `hydra_plugins` package, and it swallows
exceptions raised by callbacks (and skips `on_multirun_end` when a sweep raises), so what must be able to stop a
sweep or must always run at its end happens here.

- Before the first job: refuse parallel launchers against the embedded SQLite store; open the parent run, or
  re-open the one `+resume=<parent run id, name or sweep folder>` names, and hand its id to every job, in whatever
  process or machine it runs, through `hydra.job.env_set.APEX_PARENT_RUN_ID`.
- Per job: on resume, jobs whose (cell, seed) already has a FINISHED run with its results are not submitted (the
  cell computed from the job's composed config, as the recipe computes it); a job the sweeper could not judge
  decides itself and returns at once (`apex.sweep.resume`). With `hydra/launcher=joblib` and `n_jobs` > 1, add
  `torch_threads=<cores // n_jobs>` unless the command sets it.
- SIGTERM or SIGINT: stop the job processes (local children; this sweep's SLURM jobs), end their runs KILLED, the
  parent KILLED with the counts, print one line with the resume command, exit 128 + the signal.
- After the launcher returned or raised (a failed job, a killed worker or SLURM task): wait until no job of the
  sweep is still running, close the parent FINISHED, or FAILED with the count of failed jobs after marking the runs
  of dead jobs KILLED, and print the resume command unless it FINISHED; a launcher that lost job processes ends
  the sweep with one line and exit 3 (`JobsLost`). A tracking server that is gone: exit 3 with the resume command
  (the runs are closed on resume).
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from apex.core.cli import RESUME_WITH, exit_status
from apex.core.errors import EXIT_INPUT, EXIT_SERVICE, ServiceError
from apex.sweep.launcher import LauncherInfo, check_store, threads_per_job

if TYPE_CHECKING:
    from apex.tracking.sweep_parent import SweepParent, SweepStatus

# Hydra imports every module of `hydra_plugins` at start-up, single runs included: MLflow and the config schemas are
# imported when a sweep starts, so that a single run's pre-flight checks do not wait for them.

log = logging.getLogger("apex.sweep")
PROG = "python -m apex.run"


class ApexSweeper(Sweeper):
    """The basic grid plus the MLflow parent run, `+resume=`, signals and torch threads split across jobs."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        self.max_batch_size, self.params = max_batch_size, params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.parent: SweepParent | None = None
        self.info: LauncherInfo | None = None
        self.finished: set[tuple[str, str]] = set()
        self.threads: int | None = None
        self.skipped = 0
        self.stopped: BaseException | None = None  # what the launcher raised, if it did

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from apex.tracking.config import TrackingConfig
        from apex.tracking.lifecycle import limit_http_retries
        from apex.tracking.sweep_parent import SweepParent

        limit_http_retries()  # a lost tracking server fails the sweep in a minute, not after MLflow's retries
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        info = self.info = LauncherInfo.from_cfg(config.hydra.launcher)
        tracking = TrackingConfig.from_cfg(OmegaConf.to_container(config.tracking, resolve=True))
        check_store(tracking.uri, info)
        if config.get("torch_threads") is None:
            self.threads = threads_per_job(info)
        resume = config.get("resume")
        overrides = " ".join(config.hydra.overrides.task)
        self.parent = SweepParent.start(tracking, str(config.hydra.sweep.dir), overrides, info.kind, resume)
        if not resume:  # a short, distinct name and the swept keys, which jobs read to name themselves
            from apex.tracking.view import name_sweep_parent

            task, params = list(config.hydra.overrides.task), config.hydra.sweeper.get("params")
            name_sweep_parent(self.parent.client, self.parent.run_id, task, str(config.hydra.sweep.dir), params)
        else:
            self.finished = self.parent.finished_jobs()
            log.info("resume: %d job(s) already FINISHED under %s", len(self.finished), self.parent.run_id)

    def job_key(self, overrides: Sequence[str]) -> tuple[str, str] | None:
        """(cell, seed) of one job from its composed config (the config loader every launcher uses), as the recipe
        computes it; None when it cannot be judged here (the job then decides itself)."""
        from apex.core.configs import cell_of, load_configs
        from apex.tracking.params import flatten

        assert self.hydra_context is not None and self.config is not None
        composed = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(composed):
            del composed["hydra"]  # the task function gets the config without it
        try:
            task = OmegaConf.to_container(composed, resolve=True)
        except Exception as exc:  # e.g. a ${hydra:...} interpolation: the job checks itself
            log.debug("resume: job %s judged by the job itself (%s)", " ".join(overrides), exc)
            return None
        return cell_of(flatten(task), load_configs(task)), str(task["seed"])

    def prepare(self, batch: Sequence[Sequence[str]]) -> list[list[str]]:
        """The batch's jobs to launch: finished ones dropped (resume), the parent id and threads added."""
        from apex.tracking.mlflow_run import PARENT_RUN_ENV

        assert self.parent is not None
        kept = []
        for overrides in batch:
            if self.finished and self.job_key(overrides) in self.finished:
                log.info("resume: skipping finished job %s", " ".join(overrides))
                self.skipped += 1
                continue
            # Without `+` (conf/config.yaml declares the key): Hydra then leaves it out of the job lines it prints.
            extra = [f"hydra.job.env_set.{PARENT_RUN_ENV}={self.parent.run_id}"]
            if self.threads:
                extra.append(f"torch_threads={self.threads}")
            kept.append([*overrides, *extra])
        if self.threads and kept:
            log.info("parallel jobs on this machine: torch_threads=%d per job", self.threads)
        return kept

    def sweep(self, arguments: list[str]) -> Any:
        from apex.tracking.lifecycle import Killed

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        from apex.sweep.grid import grid

        batches = grid(arguments, self.params, parser, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        assert self.parent is not None
        self.parent.record_planned(sum(len(batch) for batch in batches))
        previous = _on_signals(_raise_killed)
        returns: list[Sequence[JobReturn]] = []
        stopped: BaseException | None = None
        try:
            index = 0
            for batch in batches:
                jobs = self.prepare(batch)
                if jobs:  # a batch that resume emptied is not launched (some launchers fail on no jobs)
                    self.validate_batch_is_legal(jobs)
                    returns.append(self.launcher.launch(jobs, initial_job_idx=index))
                    index += len(jobs)
        except BaseException as exc:
            stopped = exc
        finally:
            _on_signals(previous)
        if isinstance(stopped, Killed):
            self.interrupted(stopped)
        self.stopped = stopped
        if stopped is not None and exit_status(stopped) in (EXIT_INPUT, EXIT_SERVICE):
            self.end(launcher_done=True)  # a config error while composing a job, the tracking server: their own line
            raise stopped
        self.end(launcher_done=stopped is None)  # raises JobsLost when the launcher gave up early
        failed = [r for results in returns for r in results if r.status == JobStatus.FAILED]
        if failed:
            _ = failed[0].return_value  # raises the first failed job's exception: the exit status follows its kind
        if self.skipped:
            log.info("resume: %d finished job(s) were not launched again", self.skipped)
        return returns

    def resume_command(self) -> str:
        assert self.config is not None and self.parent is not None
        hydra_overrides = [o for o in self.config.hydra.overrides.hydra if not o.startswith("hydra.mode=")]
        task = [o for o in self.config.hydra.overrides.task if not o.lstrip("+~").startswith("resume=")]
        return shlex.join([*PROG.split(), "-m", *hydra_overrides, *task, f"+resume={self.parent.run_id}"])

    def interrupted(self, signal_error: BaseException) -> None:
        """A signal stopped the sweep: stop every job process, close the runs KILLED, one line, exit 128 + n."""
        from apex.sweep.workers import cancel_slurm, slurm_jobs, stop_children, wait_slurm

        assert self.config is not None and self.parent is not None and self.info is not None
        signum = getattr(signal_error, "signum", signal.SIGINT)
        ignored = _on_signals(signal.SIG_IGN)  # a second Ctrl-C must not leave the runs half closed
        try:
            stop_children()
            ids = slurm_jobs(self.config.hydra.launcher.get("submitit_folder"))
            cancel_slurm(ids)
            ended = wait_slurm(ids, timeout_s=120)
            status = self.parent.close(jobs_ended=ended, interrupted=True)
        finally:
            _on_signals(ignored)
        name = signal.Signals(signum).name
        sys.stderr.write(
            f"{PROG}: sweep stopped by {name}: {status.line()}; parent run {self.parent.run_id} KILLED; "
            f"{RESUME_WITH}{self.resume_command()}\n"
        )
        sys.stderr.flush()
        raise SystemExit(128 + signum)

    def end(self, launcher_done: bool) -> SweepStatus:
        """Wait for jobs still running, close the parent, say how to resume (module docstring)."""
        from apex.core.preflight import TrackingUnavailable, check_reachable
        from apex.sweep.workers import slurm_jobs, wait_children, wait_slurm

        assert self.config is not None and self.parent is not None and self.info is not None
        if not launcher_done:  # it gave up at its first failed job: the others may still run
            if self.info.kind == "submitit_local":  # job processes are this sweep's children
                wait_children()
            elif self.info.kind == "submitit_slurm":
                wait_slurm(slurm_jobs(self.config.hydra.launcher.get("submitit_folder")))
        ended = launcher_done or self.info.local or self.info.kind == "submitit_slurm"
        try:
            status = self.parent.close(jobs_ended=ended)
        except Exception as exc:
            try:
                check_reachable(self.parent.uri)
            except TrackingUnavailable as gone:
                raise TrackingUnavailable(
                    f"{gone}; the sweep's runs stay open until it answers again: {RESUME_WITH}{self.resume_command()}"
                ) from exc
            raise
        line = f"sweep {status.status}: {status.line()}"
        resume = f"{RESUME_WITH}{self.resume_command()}"  # last on the line: the command is kept whole
        if not launcher_done:  # a job process lost (a killed worker, a cancelled SLURM task): one line, exit 3
            raise JobsLost(f"{line} (the launcher reported: {_first_line(self.stopped)}); {resume}")
        if status.status != "FINISHED":
            sys.stderr.write(f"{PROG}: {line}; {resume}\n")
            sys.stderr.flush()
        return status


class JobsLost(ServiceError):
    """The launcher lost job processes (a SIGKILLed joblib worker, a cancelled or failed SLURM task): the sweep's
    runs are closed and re-running with `+resume=` completes it."""


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if exc is not None else "nothing"


def _raise_killed(signum: int, frame: object) -> None:
    from apex.tracking.lifecycle import Killed

    raise Killed(signum)


def _on_signals(handler: Any) -> Any:
    """Set `handler` for SIGTERM and SIGINT in the main thread; returns the previous ones (a pair, or as given)."""
    if isinstance(handler, tuple):
        term, intr = handler
    else:
        term = intr = handler
    try:
        return signal.signal(signal.SIGTERM, term), signal.signal(signal.SIGINT, intr)
    except ValueError:  # not the main thread
        return signal.SIG_DFL, signal.default_int_handler
