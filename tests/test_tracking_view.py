"""The MLflow view: experiment kind, run names, run descriptions (against a real embedded store)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from mlflow import MlflowClient

from apex.eval.retrieval import metric_names
from apex.tracking import names
from apex.tracking.mlflow_run import PARENT_RUN_ENV
from apex.tracking.saved_view import HEADLINE_VIEW, SHARED_VIEW_PREFIX, experiment_url, ui_hint
from apex.tracking.view import (
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    arm_of,
    job_note,
    job_run_name,
    mark_model_training,
    sweep_parent_tags,
    sweep_run_name,
    swept_keys,
)


def test_swept_keys_from_command_line_and_sweeper_params() -> None:
    task = ["experiment=paper_sweep", "seed=0,1,2", "training.stop_points=[0.5,1.0]", "training.lr=range(1,3)"]
    assert swept_keys(task, {"arm": "plain,apex", "training.lora.r": "4,8"}) == [
        "arm",
        "seed",
        "training.lora.r",
        "training.lr",
    ]  # a list value is not a sweep
    tags = sweep_parent_tags(task, {"arm": "plain,apex"})
    assert tags == {"apex.sweep_keys": "arm,training.lr", "apex.sweep_name": "paper_sweep"}


def test_sweep_and_job_names_are_short_and_distinct(tmp_path, monkeypatch) -> None:
    assert (
        sweep_run_name(["experiment=paper_sweep"], "experiments/sweeps/2026-12-01_14-52-37")
        == "paper_sweep-12-01 14:52"
    )
    assert sweep_run_name(["seed=0,1"], "/x/my-sweep") == "sweep-my-sweep"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("apex", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(experiment, tags={"apex.sweep_keys": "arm,training.lr,training.lora.r",
                                                 "apex.sweep_name": "paper_sweep"})  # fmt: skip
    monkeypatch.setenv(PARENT_RUN_ENV, parent.info.run_id)
    overrides = ["experiment=paper_sweep", "arm=apex", "training.lr=0.001", "training.lora.r=4", "seed=2",
                 "paths.experiments=/tmp/x", "torch_threads=1"]  # fmt: skip
    names = {
        job_run_name(overrides, 2, uri),
        job_run_name([*overrides[:2], "training.lr=3e-4", *overrides[3:]], 2, uri),
    }
    assert names == {"paper_sweep arm=apex lr=0.001 r=4 s2", "paper_sweep arm=apex lr=3e-4 r=4 s2"}
    monkeypatch.delenv(PARENT_RUN_ENV)
    assert job_run_name(["experiment=smoke", "model=mistral_tiny", "seed=0"], 0, uri) == "smoke model=mistral_tiny s0"
    assert job_run_name(["dataset.max_documents=9", "model.max_documents=3"], 1, uri) == (
        "run dataset.max_documents=9 model.max_documents=3 s1"
    )  # the short names would collide: keep the full keys


def test_experiment_is_marked_as_model_training_once(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("apex", artifact_location=(tmp_path / "a").as_uri())
    mark_model_training(client, experiment)
    tags = client.get_experiment(experiment).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development" and "apex.export" in tags[NOTE_TAG]
    client.set_experiment_tag(experiment, EXPERIMENT_KIND_TAG, "genai_development")  # a user's own choice stays
    mark_model_training(client, experiment)
    assert client.get_experiment(experiment).tags[EXPERIMENT_KIND_TAG] == "genai_development"


# What MLflow 3.17's experiment page restores from a saved view (its UI-state and search-facet keys).
RESTORED_KEYS = {
    "selectedColumns", "columnOrder", "columnWidths", "runsHiddenMode", "compareRunCharts", "compareRunSections",
    "viewMaximized", "runListHidden", "isAccordionReordered", "groupBy", "groupsExpanded", "useGroupedValuesInCharts",
    "hideEmptyCharts", "globalLineChartConfig", "chartsSearchFilter", "searchFilter", "orderByKey", "orderByAsc",
    "startTime", "lifecycleFilter", "modelVersionFilter", "datasetsFilter",
}  # fmt: skip


def test_saved_view_sorts_by_the_chosen_stops_validation_figure_and_keeps_a_users_edit(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("apex", artifact_location=(tmp_path / "a").as_uri())
    mark_model_training(client, experiment)
    tag = SHARED_VIEW_PREFIX + HEADLINE_VIEW
    envelope = json.loads(client.get_experiment(experiment).tags[tag])
    # MLflow's loader: an object with a string name, a number createdAt and the page state as a JSON string
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert set(state) <= RESTORED_KEYS and not state["orderByAsc"]
    # sorted by the figure the stop was chosen on (validation), never by a test figure
    assert state["orderByKey"] == f"metrics.`{names.CHOSEN_VAL_RANK_AT_1}`" and "test" not in state["orderByKey"]
    columns = state["selectedColumns"]
    assert columns[1:4] == [f"params.`{names.ARM_PARAM}`", f"metrics.`{names.CHOSEN_VAL_RANK_AT_1}`",
                            f"metrics.`{names.CHOSEN_TEST_RANK_AT_1}`"]  # fmt: skip
    assert f"metrics.`{names.HEADLINE_DIFFERENCE}`" in columns and f"tags.`{names.HEADLINE_VERDICT_TAG}`" in columns
    sections = {s["uuid"]: s for s in state["compareRunSections"]}
    charted = [(c["metricKey"], sections[c["metricSectionId"]]["name"]) for c in state["compareRunCharts"]]
    assert charted[0] == (names.CHOSEN_VAL_RANK_AT_1, "Retrieval") and ("rank_at_1", "Retrieval") in charted
    assert {s["name"]: s["display"] for s in sections.values()} == {
        "Retrieval": True,
        "Model metrics": False,
        "System metrics": False,
    }  # the rest grouped, collapsed
    logged = {*metric_names((1, 5, 10)), *(f"val_{m}" for m in metric_names((1, 5, 10)))}
    logged |= {names.CHOSEN_VAL_RANK_AT_1, names.CHOSEN_TEST_RANK_AT_1}
    assert {m for m, _ in charted} <= logged  # names the runs really log (apex.pipeline.stop_points, summary)
    client.set_experiment_tag(experiment, tag, json.dumps({**envelope, "name": "mine"}))
    mark_model_training(client, experiment)
    assert json.loads(client.get_experiment(experiment).tags[tag])["name"] == "mine"


def test_ui_hint_gives_the_command_and_link_for_sqlite_and_the_link_for_a_server(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    hint = ui_hint("sqlite:///experiments/mlflow.db", "3")
    command, link = hint.split(", then open ")
    assert command == f"`mlflow ui --backend-store-uri sqlite:///{tmp_path}/experiments/mlflow.db --port 5000`"
    assert link.startswith("http://127.0.0.1:5000/#/experiments/3/runs?") and HEADLINE_VIEW in link
    assert ui_hint("http://host:5000/", "3").startswith("http://host:5000/#/experiments/3/runs?")


def test_arm_param_names_the_two_arms_and_spells_out_an_ablation() -> None:
    assert arm_of("none", "in_batch") == "plain"
    assert arm_of("spacy", "model_aware") == arm_of("gpt4o", "model_aware") == "apex"
    assert arm_of("spacy", "in_batch") == "erm=spacy sampler=in_batch"


def test_experiment_url_opens_model_training_mode_on_the_saved_view() -> None:
    url = experiment_url("http://127.0.0.1:5000/", "7")
    path, query = url.split("?")
    assert path == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert parse_qs(query) == {"workflowType": ["machine_learning"], "viewStateShareKey": [HEADLINE_VIEW],
                               "compareRunsMode": ["CHART"]}  # fmt: skip
    assert experiment_url("sqlite:///x/mlflow.db", "7") is None  # no UI server to link to


def test_job_note_lists_every_stop_point() -> None:
    note = job_note(
        "arm=apex", 1, 120, 120, {0: 0.0, 3: 0.5, 6: 1.0},
        {s: {"rank_at_1": r, "recall_at_10": 1.0, "mrr_at_10": 0.9} for s, r in ((0, 0.5), (3, 0.6), (6, 0.625))},
        {6: {"rank_at_1": 0.7}},
    )  # fmt: skip
    lines = note.splitlines()
    assert "`arm=apex`" in lines[0] and "120 queries against 120 documents" in lines[0]
    assert "| 0 | zero-shot | 50.00% |" in note and "| 6 | 1.00 | 62.50% | 100.00% | 0.9000 | 70.00% |" in note
