"""End to end on a BEIR-like sweep: graded nDCG@10 as the primary metric (the BEIR default), queries sharing
relevant documents, the base model in the headline. A fake sweep in a temporary MLflow database; no training."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from apex.report import ReportConfig, build_report

N_QUERIES, PER_DOC = 200, 4
STEPS = {0: 0.0, 20: 0.5, 40: 1.0}
# Both arms fall below the base model (0.40) once trained; apex less than plain.
MEANS = {"apex": (0.40, 0.36, 0.37), "plain": (0.40, 0.33, 0.34)}


def _sweep(tmp_path, names: tuple[str, ...] = ("nfc-like",)) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("apex", artifact_location=str(tmp_path / "art"))
    for i, name in enumerate(names):
        _corpus(client, experiment, name, np.random.default_rng(i))
    return uri, client


def _corpus(client: MlflowClient, experiment: str, name: str, rng: np.random.Generator) -> None:
    parent = client.create_run(experiment, run_name=name, tags={"apex.kind": "sweep"}).info.run_id
    difficulty = rng.normal(size=N_QUERIES)
    base = 1 / (1 + np.exp(-(difficulty - 0.4)))
    relevant = [f"d{q // PER_DOC}\td{(q * 7) % 50 + 100}" for q in range(N_QUERIES)]
    for arm, means in MEANS.items():
        for seed in range(3):
            tags = {"mlflow.parentRunId": parent, "apex.kind": "job", "apex.cell": f"cell-{arm}"}
            tags |= {"apex.cell_label": f"arm={arm}", "apex.seed": str(seed), "apex.dataset_fingerprint": "f"}
            run = client.create_run(experiment, tags=tags).info.run_id
            params = {"dataset.name": "beir", "seed": str(seed), "report.metric": "null"}
            params |= {"erm.name": "spacy" if arm == "apex" else "none"}
            params |= {"sampler.name": "model_aware" if arm == "apex" else "in_batch"}
            for key, value in params.items():
                client.log_param(run, key, value)
            shift = rng.normal(scale=0.01)
            for (step, fraction), mean in zip(STEPS.items(), means, strict=True):
                noise = 0 if step == 0 else rng.normal(scale=0.08, size=N_QUERIES) + shift
                ndcg = np.clip(base + (mean - 0.40) + noise, 0, 1)
                if step == 0:
                    ndcg = np.clip(base, 0, 1)
                table = pd.DataFrame(
                    {"query_id": [f"q{i:03d}" for i in range(N_QUERIES)], "gold_rank": np.where(ndcg > 0.5, 1, 3)}
                )
                table["relevant_docs"] = relevant
                table["rank_at_1"] = (table["gold_rank"] == 1).astype(int)
                table["ndcg_at_10"] = ndcg
                client.log_table(run, table, f"per_query/step_{step:06d}.json")
                logged = {"ndcg_at_10": ndcg.mean(), "rank_at_1": table["rank_at_1"].mean(), "stop_fraction": fraction}
                logged |= {"n_queries": N_QUERIES, "corpus_size": 3633, "val_ndcg_at_10": mean + rng.normal(0, 0.002)}
                for key, value in logged.items():
                    client.log_metric(run, key, float(value), step=step)
            client.set_terminated(run)
    client.set_terminated(parent)


@pytest.fixture(scope="module")
def beir_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beir")
    uri, _ = _sweep(tmp)
    config = ReportConfig.from_cfg({"tracking_uri": uri, "out_root": str(tmp / "out"), "n_permutations": 200})
    return build_report(config)


def test_beir_sweep_is_judged_on_ndcg_with_clusters_and_the_base_model(beir_report) -> None:
    data = beir_report.data
    assert data.meta["metric"] == "ndcg_at_10"
    primary = data.comparisons[data.comparisons["role"] == "primary"].iloc[0]
    assert primary["metric"] == "ndcg_at_10"
    assert primary["n_clusters"] < N_QUERIES  # queries linked by shared documents
    assert primary["query_units"] < N_QUERIES / 2
    text = (beir_report.out_dir / "report.md").read_text()
    head = text[text.index("## Headline") : text.index("## Stop points")]
    assert "nDCG@10" in head and "the default for a BEIR folder" in head
    assert "The base model (step 0, zero-shot) scores 0.4" in head
    assert "Both arms are below the base model" in head
    assert "cluster(s) of queries sharing relevant documents" in head
    assert "Exact McNemar" not in text  # a rank@1-only secondary test
    base = data.base.set_index("cell")
    assert set(base.index) == {"cell-apex", "cell-plain"}
    assert (base["diff"] < 0).all() and (base["verdict"] == "significant").all()


def test_beir_files_follow_the_metric_and_star_only_compared_rows(beir_report) -> None:
    names = {p.name for p in beir_report.files}
    assert {"ndcg_at_10_diff_by_stop.png", "ndcg_at_10_seeds_paired.png", "ndcg_at_10_by_stop.png"} <= names
    results = pd.read_csv(beir_report.out_dir / "results.csv")
    starred = results[results["is_best_stop"]]
    assert set(starred["cell"]) == {"cell-apex", "cell-plain"}  # the verdict's two rows, at one stop
    assert starred["stop_fraction"].nunique() == 1
    document = json.loads((beir_report.out_dir / "results.json").read_text())
    assert len(document["base_model"]) == 2
    assert "default for a BEIR folder" in document["meta"]["metric_why"]


def test_several_sweeps_are_pooled_across_corpora(tmp_path) -> None:
    from apex.report.__main__ import main

    uri, _ = _sweep(tmp_path, ("corpus-a", "corpus-b"))
    options = ["--tracking-uri", uri, "--out-root", str(tmp_path / "out"), "--no-log", "--no-figures"]
    code = main([*options, "--n-permutations", "200", "--sweep", "corpus-a", "--sweep", "corpus-b", "--name", "both"])
    assert code == 0
    text = (tmp_path / "out" / "both" / "across.md").read_text()
    assert "| corpus-a | arm=apex | arm=plain | ndcg_at_10 |" in text and "| corpus-b |" in text
    assert "over 2 corpora" in text and "Only 2 corpora" in text
    pooled = json.loads((tmp_path / "out" / "both" / "across.json").read_text())["pooled"]
    assert pooled["arm=apex (ndcg_at_10)"]["k"] == 2
    assert (tmp_path / "out" / "corpus-a" / "report.md").exists()
