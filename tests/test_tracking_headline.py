"""The report's headline on the sweep parent (apex.tracking.headline) and the chosen stop's figures of a job run
(Summary.chosen_metrics), against a real embedded MLflow store."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient

from apex.pipeline.summary import Summary
from apex.tracking import names
from apex.tracking.headline import Headline, log_sweep_headline


def test_headline_lands_on_the_parent_as_points_and_tags(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("apex", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(experiment).info.run_id
    client.set_terminated(parent, "FINISHED")  # the report runs after the sweep ended
    first = Headline(metric="rank_at_1", difference=-0.006, ci_low=-0.058, ci_high=0.047, p=0.69,
                     verdict="no significant difference", comparison="arm=apex vs arm=plain", stop=0.5,
                     baseline=0.81, treatment=0.804)  # fmt: skip
    second = Headline(metric="rank_at_1", difference=0.02, ci_low=float("nan"), ci_high=float("nan"), p=0.01,
                      verdict="significant", comparison="lr=1e-3 vs plain")  # fmt: skip
    log_sweep_headline(client, parent, [first, second])
    run = client.get_run(parent)
    metrics, tags = run.data.metrics, run.data.tags
    assert metrics[names.HEADLINE_DIFFERENCE] == pytest.approx(-0.6)  # percentage points
    assert (metrics[names.HEADLINE_CI_LOW], metrics[names.HEADLINE_CI_HIGH]) == pytest.approx((-5.8, 4.7))
    assert metrics[names.HEADLINE_P] == pytest.approx(0.69) and metrics[names.HEADLINE_BASELINE] == pytest.approx(81)
    assert metrics[names.HEADLINE_DIFFERENCE + "_2"] == pytest.approx(2.0)
    assert names.HEADLINE_CI_LOW + "_2" not in metrics  # a missing interval is left out, not logged as NaN
    assert tags[names.HEADLINE_VERDICT_TAG] == "no significant difference" and tags[names.HEADLINE_METRIC_TAG] == (
        "rank_at_1"
    )
    assert tags[names.HEADLINE_TEXT_TAG] == (
        "arm=apex vs arm=plain at stop 0.5: rank_at_1 -0.60 points (95% interval -5.80 to +4.70), p = 0.69: "
        "no significant difference"
    )
    assert tags[names.HEADLINE_VERDICT_TAG + "_2"] == "significant" and tags["apex.headline.count"] == "2"
    with pytest.raises(ValueError, match="verdict"):
        Headline(metric="rank_at_1", difference=0.0, ci_low=0.0, ci_high=0.0, p=1.0, verdict="")


def test_chosen_metrics_name_the_validation_choice_and_its_test_figure() -> None:
    summary = Summary(run_id="r", cell_label="c", seed=0, corpus_size=500, n_queries=500)
    summary.steps = {0: 0.0, 12: 0.25, 24: 0.5, 48: 1.0}
    summary.test = {s: {"rank_at_1": r, "recall_at_10": 0.9, "ndcg_at_10": 0.8} for s, r in
                    ((0, 0.798), (12, 0.80), (24, 0.806), (48, 0.816))}  # fmt: skip
    summary.val = {s: {"rank_at_1": v} for s, v in ((0, 0.86), (12, 0.88), (24, 0.885), (48, 0.885))}
    chosen = summary.chosen_metrics()
    assert chosen[names.CHOSEN_STEP] == 24  # best validation, earliest of a tie; not the best test (48)
    assert chosen[names.CHOSEN_VAL_RANK_AT_1] == pytest.approx(88.5)
    assert chosen[names.CHOSEN_TEST_RANK_AT_1] == pytest.approx(80.6)
    assert chosen[names.ZERO_SHOT_TEST_RANK_AT_1] == pytest.approx(79.8)
    assert chosen[names.OBJECTIVE] == pytest.approx(0.885) and math.isclose(chosen[names.CHOSEN_FRACTION], 0.5)
    summary.val = {}
    assert set(summary.chosen_metrics()) == {names.ZERO_SHOT_TEST_RANK_AT_1}  # no validation: no choice to log
