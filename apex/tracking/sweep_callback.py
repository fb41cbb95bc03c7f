"""Hydra callback: one MLflow parent run per multirun sweep; every job attaches to it as a child."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from apex.tracking.secrets import scrub

if TYPE_CHECKING:  # MLflow is imported when a sweep starts: Hydra builds this callback for single runs too, and
    from mlflow.tracking import MlflowClient  # a single run's pre-flight checks should not wait ~5 s for mlflow

log = logging.getLogger("apex.tracking")


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run before the first job and closes it after the last.

    The parent id travels to the jobs through an environment variable, so any launcher that inherits the
    environment (the basic one runs jobs in this process) attaches children with ``parent_run_id``.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.client: MlflowClient | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        from apex.tracking.mlflow_run import PARENT_RUN_ENV, TrackingConfig, connect

        tracking = TrackingConfig.from_cfg(config.tracking)
        experiment_id = connect(tracking)
        self.client = MlflowClient()
        # HydraConfig is not set yet when a multirun starts: read the hydra node of the config we are given.
        sweep_dir = str(config.hydra.sweep.dir)
        overrides = " ".join(config.hydra.overrides.task)
        run = self.client.create_run(
            experiment_id,
            run_name=f"sweep-{os.path.basename(sweep_dir)}",
            tags={"apex.kind": "sweep", "apex.sweep_dir": sweep_dir, "apex.sweep_overrides": scrub(overrides)},
        )
        self.parent_run_id = run.info.run_id
        os.environ[PARENT_RUN_ENV] = self.parent_run_id
        log.info("MLflow sweep parent run %s (%s)", self.parent_run_id, overrides)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from apex.tracking.mlflow_run import PARENT_RUN_ENV

        if self.client is not None and self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, "FINISHED")
        os.environ.pop(PARENT_RUN_ENV, None)
