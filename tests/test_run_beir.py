"""`python -m apex.run dataset=beir dataset.split=given` end to end on a tiny BEIR folder: a two-seed sweep whose
second job re-uses step 0 ("cache hit"), and TREC run files that ranx re-scores to the logged metrics."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
from apex_cli import run_apex
from beir_folder import topical_beir
from mlflow.tracking import MlflowClient

ranx = pytest.importorskip("ranx")


pytestmark = pytest.mark.slow  # two apex.run jobs in a subprocess (~50 s of CPU); the fast unit tests are in
# test_eval_trec_cache.py


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beir_e2e")
    folder = topical_beir(tmp / "beir")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    args = ["-m", "seed=0,1", "dataset=beir", f"dataset.path={folder}", "experiment=smoke", "training.max_steps=2"]
    done = run_apex(tmp, *args, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("apex")
    jobs = client.search_runs([experiment.experiment_id], "tags.`apex.kind` = 'job'", order_by=["start_time ASC"])
    return tmp, client, jobs, done.stdout


def test_full_corpus_test_split_and_step0_cache_hit(sweep) -> None:
    _, client, jobs, stdout = sweep
    assert len(jobs) == 2
    first, second = jobs
    assert first.data.tags["apex.step0_cache"] == "miss" and second.data.tags["apex.step0_cache"] == "hit"
    assert "step-0 evaluation: cache hit" in stdout and "7 queries against a corpus of 40 documents" in stdout
    for name in ("ndcg_at_10", "rank_at_1", "recall_at_100", "val_ndcg_at_10"):
        step0 = [[m for m in client.get_metric_history(j.info.run_id, name) if m.step == 0] for j in jobs]
        assert len(step0[0]) == len(step0[1]) == 1 and step0[0][0].value == step0[1][0].value, name
    assert first.data.metrics["test_documents"] == 40 and first.data.metrics["test_queries"] == 7
    assert first.data.metrics["train_queries"] == 11 and first.data.metrics["val_queries"] == 6


def test_trec_artifacts_rescore_to_the_logged_metrics(sweep, tmp_path) -> None:
    _, client, jobs, _ = sweep
    run_id = jobs[0].info.run_id
    qrels = ranx.Qrels.from_file(client.download_artifacts(run_id, "trec/qrels/test.qrels", str(tmp_path)), "trec")
    names = {"ndcg_at_10": "ndcg@10", "mrr_at_10": "mrr@10", "recall_at_100": "recall@100", "rank_at_1": "hits@1"}
    for step in (0, 1, 2):
        path = client.download_artifacts(run_id, f"trec/step_{step:06d}/test.run", str(tmp_path / str(step)))
        assert len(Path(path).read_text().splitlines()) == 7 * 40  # top 100 per query, capped by the 40 documents
        scores = ranx.evaluate(qrels, ranx.Run.from_file(path, "trec"), list(names.values()))
        for ours, theirs in names.items():
            logged = [m.value for m in client.get_metric_history(run_id, ours) if m.step == step]
            assert logged and logged[0] == pytest.approx(scores[theirs], abs=1e-6), (step, ours)
