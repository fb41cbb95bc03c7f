"""Log an export as an MLflow model (``sentence_transformers`` flavour) and register it.

The pyfunc flavour calls ``SentenceTransformer.encode(texts, **params)``, so the signature declares the two
params that pick the query or the document side: ``{"prompt_name": "query", "task": "query"}`` encodes queries
(query prompt, query max length); no params encodes documents (the document prompt is empty for every apex model
except ones configured otherwise, and the length cap is the longer of the two).

    mlflow.pyfunc.load_model("runs:/<run id>/model").predict(["a question"], params={"prompt_name": "query",
                                                                                    "task": "query"})
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from mlflow import MlflowClient

from apex.export.export import ExportResult
from apex.tracking import names

log = logging.getLogger("apex.export")

QUERY_PARAMS = {"prompt_name": "query", "task": "query"}
DOCUMENT_PARAMS = {"prompt_name": "document", "task": "document"}


def model_name(step: int, last_step: int) -> str:
    """``model`` for the run's last stop point, ``model-step<N>`` for an earlier one."""
    return "model" if step == last_step else f"model-step{step}"


def signature(dimension: int):  # -> mlflow.models.ModelSignature
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dimension))]),
        params=ParamSchema([ParamSpec("prompt_name", "string", "document"), ParamSpec("task", "string", "document")]),
    )


@contextlib.contextmanager
def using_store(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for a while, then restore it and MLFLOW_TRACKING_URI (which
    ``mlflow.set_tracking_uri`` exports to the environment, where later subprocesses would inherit it)."""
    import mlflow

    before_env, before = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before_env


def log_export(client: MlflowClient, result: ExportResult, tags: Mapping[str, str] | None = None) -> str:
    """Log ``result.out_dir`` to its run as an MLflow model; returns the model URI (``models:/<model id>``)."""
    import mlflow
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(result.out_dir), device="cpu")
    run = client.get_run(result.run_id)
    last = max(int(m.step) for m in client.get_metric_history(result.run_id, "stop_fraction"))
    model_tags = {
        names.RUN_ID: result.run_id,
        names.STEP: str(result.step),
        names.STOP_FRACTION_TAG: str(result.provenance.get("stop_fraction")),
        names.BASE_MODEL: str(result.provenance.get("base_model")),
        **(tags or {}),
    }
    active = mlflow.active_run()  # tracking.export_model logs from inside the run itself
    same = active is not None and active.info.run_id == result.run_id
    with (
        using_store(client.tracking_uri),
        contextlib.nullcontext()
        if same
        else mlflow.start_run(run_id=result.run_id, experiment_id=run.info.experiment_id),
    ):
        info = mlflow.sentence_transformers.log_model(
            st_model,
            name=model_name(result.step, last),
            signature=signature(int(result.provenance["dimension"])),
            input_example=["What is the capital of France?", "Paris is the capital of France."],
            extra_files=[str(result.out_dir / "README.md"), str(result.out_dir / "apex_export.json")],
            tags=model_tags,
            step=result.step,
        )
    log.info("logged MLflow model %s (run %s, step %d)", info.model_uri, result.run_id, result.step)
    return info.model_uri


def register(
    client: MlflowClient, model_uri: str, name: str, tags: Mapping[str, Any], description: str | None = None
) -> Any:
    """A new version of registered model ``name`` from ``model_uri``, tagged with ``tags`` (strings)."""
    import mlflow

    with using_store(client.tracking_uri):
        version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    if description:
        client.update_model_version(name, version.version, description=description)
    return client.get_model_version(name, version.version)
