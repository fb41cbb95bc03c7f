"""End to end through `python -m apex.run`: a smoke sweep's MLflow structure, determinism, no secret leaks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from apex_cli import TINY_RUN, run_apex
from mlflow.tracking import MlflowClient

from apex.store.hashing import content_sha256

SECRET = "sk-test-apex-e2e-0123456789abcdef"
FAST = [*TINY_RUN, "eval.on_val=false"]


def apex_run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    done = run_apex(tmp, *args, *FAST, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    sweep_out = apex_run(tmp, "-m", "seed=0,1")
    single_out = apex_run(tmp, "seed=0")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    mlflow.set_experiment("apex")  # load_table searches the active experiment
    return tmp, MlflowClient(), sweep_out, single_out


def runs(client: MlflowClient, query: str):
    experiment = client.get_experiment_by_name("apex")
    return client.search_runs([experiment.experiment_id], filter_string=query)


def test_sweep_has_one_parent_and_a_child_per_seed(sweep) -> None:
    _, client, _, _ = sweep
    parents = runs(client, "tags.`apex.kind` = 'sweep'")
    assert len(parents) == 1
    children = runs(client, f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(c.data.tags["apex.seed"] for c in children) == ["0", "1"]
    assert len({c.data.tags["apex.cell"] for c in children}) == 1  # seeds of one cell share the cell tag
    for child in children:
        tags, params = child.data.tags, child.data.params
        assert tags["apex.kind"] == "job" and tags["apex.cell_label"].startswith("dataset.max_documents=120")
        assert tags["apex.git_dirty"] in ("true", "false") and len(tags["apex.git_commit"]) == 40
        assert params["training.max_steps"] == "4" and params["model.pooling"] == "mean"
        assert params["seed"] == tags["apex.seed"]
        history = client.get_metric_history(child.info.run_id, "rank_at_1")
        assert sorted(m.step for m in history) == [0, 2, 4]
        fractions = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "stop_fraction")}
        assert fractions == {0: 0.0, 2: 0.5, 4: 1.0}
        table = mlflow.load_table("per_query/step_000004.json", run_ids=[child.info.run_id])
        assert {"query_id", "gold_doc", "gold_rank", "gold_score", "top_doc"} <= set(table.columns)
        assert len(table) == int(client.get_metric_history(child.info.run_id, "n_queries")[0].value)


def test_same_seed_twice_gives_identical_metrics_and_tables(sweep) -> None:
    _, client, _, _ = sweep
    seed0 = runs(client, "tags.`apex.seed` = '0'")
    assert len(seed0) == 2
    metrics = [{k: v for k, v in r.data.metrics.items() if "second" not in k} for r in seed0]
    assert metrics[0] == metrics[1]
    tables = [mlflow.load_table("per_query/step_000004.json", run_ids=[r.info.run_id]) for r in seed0]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    losses = [[m.value for m in client.get_metric_history(r.info.run_id, "train_loss")] for r in seed0]
    assert losses[0] == losses[1]
    other = runs(client, "tags.`apex.seed` = '1'")[0]
    assert [m.value for m in client.get_metric_history(other.info.run_id, "train_loss")] != losses[0]


def test_closing_summary_is_printed(sweep) -> None:
    _, _, _, single = sweep
    assert "zero-shot" in single.stdout and "rank@1" in single.stdout and "corpus of" in single.stdout
    # The sweep's first job built these splits into the store; this run found them there (and the validation
    # objective is absent, because these runs skip validation).
    assert "data store: splits stored, maps none" in single.stdout


def test_runs_tag_the_data_they_used(sweep) -> None:
    tmp, client, _, _ = sweep
    for run in runs(client, "tags.`apex.kind` = 'job'"):
        tags = run.data.tags
        stored = Path(tags["apex.data.prepared.path"])
        assert stored.parent == tmp / "data" / "store" / "prepared" and tags["apex.data.prepared.status"] in (
            "built", "stored")  # fmt: skip
        assert tags["apex.data.prepared.sha256"] == content_sha256(stored)
        assert len(tags["apex.data.test_fingerprint"]) == 16


def test_secret_from_environment_reaches_no_store(sweep) -> None:
    tmp, _, sweep_out, single_out = sweep
    needle = SECRET.encode()
    leaks = [p for p in tmp.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert not leaks, f"secret found in {leaks}"
    assert SECRET not in sweep_out.stdout + sweep_out.stderr + single_out.stdout + single_out.stderr
