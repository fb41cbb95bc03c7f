"""Resume decided inside the job: a job of a sweep whose (cell, seed) already has a FINISHED run with its results
under the sweep's parent returns at once.

The sweeper does not submit such jobs (it composes each job's config to know), but a job it could not judge, or
one that a second attempt submitted while the first was still running, checks itself before any work: one MLflow
query, run after the config is validated and before the data stage.
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("apex.sweep")


def finished_run(cfg: DictConfig) -> str | None:
    """The id of a FINISHED run with results of this job's (cell, seed) under its sweep's parent, else None
    (outside a sweep, always None)."""
    from apex.tracking.mlflow_run import PARENT_RUN_ENV

    parent = os.environ.get(PARENT_RUN_ENV)
    if not parent:
        return None
    from mlflow.tracking import MlflowClient

    from apex.core.configs import cell_of, load_configs
    from apex.tracking.lifecycle import has_results
    from apex.tracking.params import flatten

    typed = load_configs(cfg)
    cell, seed = cell_of(flatten(OmegaConf.to_container(cfg, resolve=True)), typed), str(typed.job.seed)
    client = MlflowClient(typed.tracking.uri)
    experiment = client.get_experiment_by_name(typed.tracking.experiment)
    if experiment is None:
        return None
    query = f"tags.`mlflow.parentRunId` = '{parent}' and tags.`apex.cell` = '{cell}' and tags.`apex.seed` = '{seed}'"
    for run in client.search_runs([experiment.experiment_id], query, max_results=100):
        if has_results(run):
            return run.info.run_id
    return None
