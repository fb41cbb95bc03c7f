"""Experiment tracking (MLflow): the recipe's side channel. Stages never import this package."""

from apex.tracking.mlflow_run import JobRun, TrackingConfig, connect
from apex.tracking.params import as_params, cell_hash, cell_label, flatten
from apex.tracking.provenance import git_state
from apex.tracking.secrets import reject_secrets_in_config, scrub

__all__ = [
    "JobRun",
    "TrackingConfig",
    "as_params",
    "cell_hash",
    "cell_label",
    "connect",
    "flatten",
    "git_state",
    "reject_secrets_in_config",
    "scrub",
]
