"""Experiment tracking (MLflow): the recipe's side channel. Stages never import this package."""

from apex.core.lazy import lazy_exports

_EXPORTS = {
    "JobRun": "mlflow_run",
    "TrackingConfig": "config",
    "as_params": "params",
    "cell_hash": "params",
    "cell_label": "params",
    "connect": "mlflow_run",
    "flatten": "params",
    "git_state": "provenance",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "JobRun",
    "TrackingConfig",
    "as_params",
    "cell_hash",
    "cell_label",
    "connect",
    "flatten",
    "git_state",
]
