"""apex's sweeper: Hydra's basic sweeper (same `hydra.sweeper.params`, same grid) that also owns the sweep's MLflow
parent run. Hydra loads sweepers only from the `hydra_plugins` package, and it swallows exceptions raised by
callbacks, so what must be able to stop a sweep (a store that cannot take parallel writers, a resume target that
does not exist) happens here.

- Before the first job: refuse parallel launchers against the embedded SQLite store; open the parent run, or
  re-open the one `+resume=<parent run id or name>` names, and hand its id to every job, in whatever process or
  machine it runs, through `hydra.job.env_set.APEX_PARENT_RUN_ID`.
- Per job: on resume, skip jobs whose (cell, seed) already has a FINISHED run under the parent (the cell is
  computed from the job's composed config, as the recipe computes it); with `hydra/launcher=joblib` and
  `n_jobs` > 1, add `torch_threads=<cores // n_jobs>` unless the command sets `torch_threads`, so two jobs on two
  cores do not each start two threads and fight.
- After the launcher returned or raised (a failed job, a killed worker, Ctrl-C): close the parent FINISHED, or
  FAILED with the count of failed jobs, after marking the runs of dead jobs KILLED.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from apex.sweep.launcher import LauncherInfo, check_store, threads_per_job

if TYPE_CHECKING:
    from apex.tracking.sweep_parent import SweepParent

# Hydra imports every module of `hydra_plugins` at start-up, single runs included: MLflow and the config schemas are
# imported when a sweep starts, so that a single run's pre-flight checks do not wait for them.

log = logging.getLogger("apex.sweep")


class ApexSweeper(BasicSweeper):
    """BasicSweeper plus the MLflow parent run, `+resume=` and torch threads split across parallel jobs."""

    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.parent: SweepParent | None = None
        self.launcher_info: LauncherInfo | None = None
        self.finished: set[tuple[str, str]] = set()
        self.threads: int | None = None
        self.skipped = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from apex.tracking.config import TrackingConfig
        from apex.tracking.sweep_parent import SweepParent

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        assert self.launcher is not None
        self._launcher_launch = self.launcher.launch
        self.launcher.launch = self._launch  # type: ignore[method-assign]
        info = self.launcher_info = LauncherInfo.from_cfg(config.hydra.launcher)
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
        if resume:
            self.finished = self.parent.finished_jobs()
            log.info("resume: %d job(s) already FINISHED under %s", len(self.finished), self.parent.run_id)

    def job_key(self, overrides: Sequence[str]) -> tuple[str, str]:
        """(cell, seed) of one job, from its composed config without the hydra node, as the recipe computes it."""
        from apex.core.configs import cell_of, load_configs
        from apex.tracking.params import flatten

        assert self.hydra_context is not None and self.config is not None
        composed = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        hydra_config = HydraConfig.instance()
        previous = hydra_config.cfg
        hydra_config.set_config(composed)  # so that ${hydra:...} interpolations resolve, as in the job
        try:
            with open_dict(composed):
                del composed["hydra"]  # the task function gets the config without it
            task = OmegaConf.to_container(composed, resolve=True)
        finally:
            if previous is not None:
                hydra_config.cfg = previous
        return cell_of(flatten(task), load_configs(task)), str(task["seed"])

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        from apex.tracking.mlflow_run import PARENT_RUN_ENV

        assert self.parent is not None and self.overrides is not None
        if self.batch_index == 0:  # the parent's close counts planned jobs that never started as failed
            self.parent.record_planned(sum(len(batch) for batch in self.overrides))
        kept = []
        for overrides in super().get_job_batch():
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

    def _launch(self, batch: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        """The launcher's `launch`, except for a batch that resume emptied (some launchers fail on no jobs)."""
        return self._launcher_launch(batch, initial_job_idx=initial_job_idx) if batch else []

    def sweep(self, arguments: list[str]) -> Any:
        assert self.parent is not None and self.launcher_info is not None
        completed = False
        try:
            returns = super().sweep(arguments)
            completed = True
            return returns
        finally:
            # Every job returned (completed), or the launcher ran them all on this machine and is gone: RUNNING
            # runs are dead. A remote launcher that stopped early may leave jobs running: leave their runs alone.
            self.parent.close(jobs_ended=completed or self.launcher_info.local)
            if self.skipped:
                log.info("resume: %d finished job(s) were not launched again", self.skipped)
