"""End to end: a fake sweep in a temporary MLflow sqlite database, laid out as docs/design.md says, then the report."""

from __future__ import annotations

import copy
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy import stats

from apex.core.cli import guard
from apex.report import ReportConfig, build_report
from apex.report.__main__ import main
from apex.report.collect import PerQueryLoader, per_query_values
from apex.report.compare import VERDICTS
from apex.report.crossed import crossed_mean
from apex.report.figures import heatmap
from apex.report.select import SelectionError

N_QUERIES = 300
CORPUS = 1200
STEPS = {0: 0.0, 50: 0.5, 100: 1.0}


@dataclass
class FakeSweep:
    uri: str
    client: MlflowClient
    parent_id: str
    ranks: dict[tuple[str, int, int], np.ndarray]  # (arm, seed, step) -> gold ranks
    run_ids: dict[tuple[str, int], str]


def _gold_ranks(rng: np.random.Generator, p_first: float) -> np.ndarray:
    first = rng.uniform(size=N_QUERIES) < p_first
    return np.where(first, 1, rng.integers(2, 40, size=N_QUERIES))


def make_sweep(tmp_path: Path) -> FakeSweep:
    """Three cells × two seeds: erm=none (baseline), erm=spacy (better once trained), erm=spacy at another lr
    (no baseline with that lr), plus one failed run that the report must skip."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("apex", artifact_location=str(tmp_path / "mlartifacts"))
    parent = client.create_run(
        experiment,
        run_name="smoke-sweep",
        tags={"apex.kind": "sweep", "apex.sweep_dir": "multirun/x", "apex.sweep_overrides": "erm=none,spacy seed=0,1"},
    )
    parent_id = parent.info.run_id
    arms = {
        "none": {"erm.name": "none", "training.lr": "0.0001", "cell": "aaaaaaaaaaa1", "p": (0.60, 0.64, 0.66)},
        "spacy": {"erm.name": "spacy", "training.lr": "0.0001", "cell": "bbbbbbbbbbb2", "p": (0.63, 0.72, 0.75)},
        "spacy_lr": {"erm.name": "spacy", "training.lr": "0.0002", "cell": "ccccccccccc3", "p": (0.63, 0.70, 0.71)},
    }
    ranks, run_ids = {}, {}
    for arm_index, (arm, spec) in enumerate(arms.items()):
        for seed in (0, 1):
            rng = np.random.default_rng([arm_index, seed])
            label = f"erm={spec['erm.name']} training.lr={spec['training.lr']}"
            run = client.create_run(
                experiment,
                run_name=f"{arm}-{seed}",
                tags={
                    "mlflow.parentRunId": parent_id,
                    "apex.kind": "job",
                    "apex.cell": spec["cell"],
                    "apex.cell_label": label,
                    "apex.seed": str(seed),
                    "apex.git_commit": "0" * 40,
                    "apex.git_dirty": "false",
                    "apex.dataset_fingerprint": "f" * 64,
                },
            )
            run_id = run.info.run_id
            run_ids[(arm, seed)] = run_id
            params = {
                "erm.name": spec["erm.name"],
                # The baseline arm is plain text with in-batch negatives (the default baseline spec).
                "sampler.name": "in_batch" if spec["erm.name"] == "none" else "model_aware",
                "training.lr": spec["training.lr"],
                "training.lora.r": "8",
                "seed": str(seed),
                "tracking.experiment": "apex",
                "hydra.run.dir": f"outputs/{arm}-{seed}",
                "data.cache_dir": "cache",
            }
            for key, value in params.items():
                client.log_param(run_id, key, value)
            for (step, fraction), p in zip(STEPS.items(), spec["p"], strict=True):
                gold = _gold_ranks(rng, p)
                ranks[(arm, seed, step)] = gold
                table = pd.DataFrame(
                    {
                        "query_id": [f"q{i:04d}" for i in range(N_QUERIES)],
                        "gold_doc": [f"d{i}" for i in range(N_QUERIES)],
                        "gold_rank": gold,
                        "gold_score": rng.uniform(size=N_QUERIES),
                        "top_doc": [f"d{i}" for i in range(N_QUERIES)],
                        "top_score": rng.uniform(size=N_QUERIES),
                    }
                )
                values = per_query_values(table)
                if arm == "spacy":
                    # As apex.eval writes it: metric columns (rank_at_1 as int) beside the design's six columns.
                    table["n_relevant"] = 1
                    table = table.assign(**values).astype({"rank_at_1": "int64"})
                client.log_table(run_id, table, f"per_query/step_{step:06d}.json")
                for metric, per_query in values.items():
                    client.log_metric(run_id, metric, float(per_query.mean()), step=step)
                client.log_metric(run_id, "n_queries", N_QUERIES, step=step)
                client.log_metric(run_id, "corpus_size", CORPUS, step=step)
                client.log_metric(run_id, "stop_fraction", fraction, step=step)
                # Validation peaks at 0.5 for the lr=2e-4 arm, at 1.0 for the others.
                val = p - (0.05 if arm == "spacy_lr" and step == 100 else 0.0)
                client.log_metric(run_id, "val_rank_at_1", val, step=step)
            client.set_terminated(run_id)
    failed = client.create_run(experiment, tags={"mlflow.parentRunId": parent_id, "apex.kind": "job"})
    client.set_terminated(failed.info.run_id, status="FAILED")
    client.set_terminated(parent_id)
    return FakeSweep(uri, client, parent_id, ranks, run_ids)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("report")
    sweep = make_sweep(tmp_path)
    config = ReportConfig.from_cfg({"tracking_uri": sweep.uri, "out_root": str(tmp_path / "reports")})
    return sweep, build_report(config), tmp_path


def test_files_written_and_logged_to_parent(report) -> None:
    sweep, result, _ = report
    assert result.out_dir.name == "smoke-sweep"
    names = {p.relative_to(result.out_dir).as_posix() for p in result.files}
    for expected in (
        "report.md",
        "results.csv",
        "results.json",
        "table.tex",
        "figures/rank_at_1_by_stop.png",
        "figures/rank_at_1_seeds_paired.png",
        "figures/rank_at_1_diff_by_stop.png",
        "figures/heatmap_lr_lora_r.png",
    ):
        assert expected in names
        assert (result.out_dir / expected).stat().st_size > 0
    assert (result.out_dir / "figures/heatmap_lr_lora_r.png").read_bytes()[:4] == b"\x89PNG"
    assert result.logged_to_run == sweep.parent_id
    logged = {f.path for f in sweep.client.list_artifacts(sweep.parent_id, "report")}
    assert {"report/report.md", "report/results.csv", "report/figures"} <= logged
    figures = {f.path for f in sweep.client.list_artifacts(sweep.parent_id, "report/figures")}
    assert "report/figures/rank_at_1_by_stop.png" in figures
    assert result.seconds < 60


def test_results_csv_matches_the_logged_data(report) -> None:
    sweep, result, _ = report
    results = pd.read_csv(result.out_dir / "results.csv")
    assert len(results) == 3 * len(STEPS)  # three cells × three stop points
    row = results[(results["cell"] == "bbbbbbbbbbb2") & (results["stop_fraction"] == 1.0)].iloc[0]
    per_seed = [(sweep.ranks[("spacy", s, 100)] == 1).mean() for s in (0, 1)]
    assert row["rank_at_1_mean"] == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert row["rank_at_1_sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)
    assert row["n_seeds"] == 2 and row["n_queries"] == N_QUERIES and row["corpus_size"] == CORPUS
    assert row["rank_at_1_ci_low"] < row["rank_at_1_mean"] < row["rank_at_1_ci_high"]
    # Paired comparison against erm=none, seed by seed, query by query.
    a = np.concatenate([sweep.ranks[("spacy", s, 100)] == 1 for s in (0, 1)])
    b = np.concatenate([sweep.ranks[("none", s, 100)] == 1 for s in (0, 1)])
    assert row["baseline"] == "aaaaaaaaaaa1"
    assert row["diff"] == pytest.approx(a.mean() - b.mean(), abs=1e-6)
    n10, n01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert (row["n10"], row["n01"]) == (n10, n01)
    exact = stats.binomtest(n10, n10 + n01).pvalue
    # The secondary pooled test: 10,000 sign flips, within a few Monte Carlo errors of the exact McNemar value.
    assert row["p_pooled"] == pytest.approx(exact, abs=8 * np.sqrt(exact * (1 - exact) / 10_000) + 1e-3)
    # The primary test, recomputed from the raw ranks: seeds × queries matrix of differences.
    d = np.stack(
        [(sweep.ranks[("spacy", s, 100)] == 1).astype(float) - (sweep.ranks[("none", s, 100)] == 1) for s in (0, 1)]
    )
    reference = crossed_mean(d)
    assert row["p_crossed"] == pytest.approx(reference.pvalue(), rel=1e-5)  # csv keeps 6 digits
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(reference.interval(0.95), rel=1e-5)
    assert row["comparison"] == "primary" and row["family_size"] == 1
    assert row["p_crossed_holm"] == pytest.approx(row["p_crossed"])  # a family of one
    assert row["is_best_stop"]
    # Step 0 (one base model in both arms) is listed, never tested; stop 0.5 is exploratory, unadjusted.
    others = results[(results["cell"] == "bbbbbbbbbbb2") & (results["stop_fraction"] != 1.0)].set_index("stop_fraction")
    assert others.loc[0.0, "comparison"] == "zero-shot" and np.isnan(others.loc[0.0, "p_crossed"])
    assert others.loc[0.5, "comparison"] == "exploratory" and np.isnan(others.loc[0.5, "p_crossed_holm"])
    # The lr=2e-4 cell has no baseline at its lr: no star (it marks only rows a verdict compares); its displayed
    # stop point follows its own validation rank@1.
    other = results[results["cell"] == "ccccccccccc3"]
    assert other["baseline"].isna().all()
    assert not other["is_best_stop"].any()
    stops = pd.DataFrame(json.loads((result.out_dir / "results.json").read_text())["stops"]).set_index("cell")
    assert stops.loc["ccccccccccc3", "stop_fraction"] == 0.5 and not stops.loc["ccccccccccc3", "compared"]
    assert stops.loc["aaaaaaaaaaa1", "compared"]  # the baseline is shown at its comparison's stop


def test_results_json_mcnemar_and_notes(report) -> None:
    sweep, result, _ = report
    document = json.loads((result.out_dir / "results.json").read_text())
    mcnemar = pd.DataFrame(document["mcnemar"])
    assert len(mcnemar) == 2 * len(STEPS)
    for r in mcnemar.to_dict(orient="records"):
        step = {v: k for k, v in STEPS.items()}[r["stop_fraction"]]
        a = sweep.ranks[("spacy", r["seed"], step)] == 1
        b = sweep.ranks[("none", r["seed"], step)] == 1
        n10, n01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
        assert (r["n10"], r["n01"]) == (n10, n01)
        assert r["p_mcnemar"] == pytest.approx(stats.binomtest(n10, n10 + n01).pvalue if n10 + n01 else 1.0)
    notes = " ".join(document["notes"])
    assert "FAILED" in notes
    assert "ccccccccccc3" in notes  # no baseline
    assert "sqlite" in document["meta"]["tracking_uri"]


def test_report_md_reads_headline_first(report) -> None:
    _, result, _ = report
    text = (result.out_dir / "report.md").read_text()
    headline = text.index("## Headline")
    assert headline < text.index("## Metrics by configuration")
    first = text[headline : text.index("## Stop points")]
    assert "erm=spacy training.lr=0.0001" in first and "erm=none training.lr=0.0001" in first
    assert "Holm" in first and "BH" in first and "crossed random factors" in first
    assert "minimum detectable effect" in first and "n/a" not in first
    assert "1,200 documents" in first and "300 queries" in first
    assert "figures/heatmap_lr_lora_r.png" in text
    latex = (result.out_dir / "table.tex").read_text()
    assert "\\begin{tabular}" in latex and "erm=spacy training.lr=0.0001" in latex


def test_same_seed_same_numbers_and_selection_by_id(report) -> None:
    sweep, result, tmp_path = report
    options = {"tracking_uri": sweep.uri, "out_root": str(tmp_path / "again"), "log_to_mlflow": False}
    again = build_report(
        ReportConfig.from_cfg({**options, "sweep": sweep.parent_id, "name": "by-id", "figures": False})
    )
    assert again.data.meta["parent_run_id"] == sweep.parent_id
    first = pd.read_csv(result.out_dir / "results.csv")
    second = pd.read_csv(again.out_dir / "results.csv")
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(SelectionError):
        build_report(ReportConfig.from_cfg({**options, "sweep": "no-such-sweep"}))


def test_cli_with_a_filter_writes_a_report_without_a_parent(report) -> None:
    sweep, _, tmp_path = report
    out_root = tmp_path / "cli"
    code = main(
        [
            "--tracking-uri",
            sweep.uri,
            "--filter",
            "params.`training.lr` = '0.0001'",
            "--name",
            "filtered",
            "--out-root",
            str(out_root),
            "--no-figures",
        ]
    )
    assert code == 0
    results = pd.read_csv(out_root / "filtered" / "results.csv")
    assert set(results["cell"]) == {"aaaaaaaaaaa1", "bbbbbbbbbbb2"}
    assert set(results["verdict"].dropna()) <= set(VERDICTS)
    assert guard(main, "python -m apex.report", ["--tracking-uri", sweep.uri, "--baseline", "erm.name"]) == 2
    no_experiment = ["--tracking-uri", sweep.uri, "--experiment", "no-such-experiment", "--no-log"]
    assert guard(main, "python -m apex.report", no_experiment) == 2


def test_missing_per_query_table_is_counted(report) -> None:
    sweep, _, _ = report
    loader = PerQueryLoader(sweep.client)
    assert loader.load(sweep.parent_id, 0) is None
    assert loader.missing == [(sweep.parent_id, 0)]
    table = loader.load(sweep.run_ids[("none", 0)], 50)
    np.testing.assert_array_equal(table["gold_rank"].to_numpy(), sweep.ranks[("none", 0, 50)])


def test_heatmap_is_skipped_with_a_note_when_nothing_varies(report, tmp_path: Path) -> None:
    _, result, _ = report
    data = copy.deepcopy(result.data)
    for params in data.params.values():
        params["training.lr"] = "0.0001"
    assert heatmap(data, tmp_path / "grid.png") is None
    assert not (tmp_path / "grid.png").exists()
    assert any("heatmap skipped" in note for note in data.notes)


def test_plan_command_reads_the_pilot_sweep(report, capsys) -> None:
    sweep, result, _ = report
    code = main(["plan", "--tracking-uri", sweep.uri, "--effect", "5,10", "--seeds", "2,5", "--queries", "300,3000"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "erm=spacy training.lr=0.0001 vs erm=none training.lr=0.0001 at stop 1" in out
    # The plan's "this sweep detects" is the report's own MDE of that comparison (same test, same level).
    primary = result.data.comparisons.query("role == 'primary'").iloc[0]
    assert f"this sweep (2 × 300) detects {100 * primary['mde']:.1f} points" in out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("2 ", "5 "))]
    assert [(int(x[0]), int(x[1])) for x in lines] == [(2, 300), (2, 3000), (5, 300), (5, 3000)]
    mde = {(int(x[0]), int(x[1])): float(x[2]) for x in lines}
    assert mde[(5, 3000)] < mde[(5, 300)] < mde[(2, 300)]  # more seeds and more queries detect less
    assert main(["plan", "--tracking-uri", sweep.uri, "--experiment", "nope"]) == 1
    # Only the baseline's runs: the plan reads its two seeds and says what it has to assume.
    baseline_only = ["plan", "--tracking-uri", sweep.uri, "--filter", "params.`erm.name` = 'none'"]
    assert main(baseline_only) == 0
    out = capsys.readouterr().out
    assert "erm=none training.lr=0.0001 at stop 1 (baseline only (per-query arm effects assumed: ratio 1)" in out
