"""The real thing, end to end: `apex.run -m experiment=smoke_sweep` (two arms × two seeds) → `apex.report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # four smoke jobs and a report: about 4 minutes on 2 cores
def test_smoke_sweep_to_report(tmp_path) -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = [
        sys.executable,
        "-m",
        "apex.run",
        "-m",
        "experiment=smoke_sweep",
        "eval.on_val=false",
        "torch_threads=1",
        f"paths.experiments={tmp_path}",
        f"paths.data={tmp_path}/data",
        f"hydra.sweep.dir={tmp_path}/sweep",
    ]
    done = subprocess.run(sweep, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "base embeddings cache hit" in done.stdout  # the second seed of the apex arm reuses the first's

    report = [sys.executable, "-m", "apex.report", "--tracking-uri", uri, "--out-root", str(tmp_path / "reports")]
    done = subprocess.run(report, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    out = tmp_path / "reports" / "smoke_sweep-sweep"  # the parent run's name: <preset>-<sweep dir>
    for name in ("report.md", "results.csv", "results.json", "table.tex"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "figures").glob("*.png"))
    results = pd.read_csv(out / "results.csv")
    assert results["n_seeds"].max() == 2
    payload = json.loads((out / "results.json").read_text())
    plain = set(results.loc[results["cell_label"].str.startswith("arm=plain"), "cell"])
    comparisons = payload["comparisons"]  # the apex arm against the plain-text arm, at every stop point
    assert len(plain) == 1 and comparisons and {c["baseline"] for c in comparisons} == plain

    client = MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name("apex").experiment_id], "tags.`apex.kind` = 'sweep'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/report.md" in logged and "report/results.csv" in logged
