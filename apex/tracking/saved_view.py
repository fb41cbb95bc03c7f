"""The experiment page a user should land on: model-training mode, the chosen stop point's figures first.

What MLflow 3.17's UI reads, and from where (read in its bundled UI code, mlflow/server/js/build):

- **GenAI vs model training.** The ``mlflow.experimentKind`` experiment tag is *not* what picks the mode in the
  open-source UI: its workflow switch is on, and the mode is one setting per browser (the sidebar's
  "GenAI / Model training" toggle, kept in the browser's local storage, default GenAI), overridden by the URL
  query ``workflowType=machine_learning``. No experiment or server setting changes that default, so apex links to
  its experiments with that query (``experiment_url``) and still sets the tag (read by MLflow versions without
  the switch).
- **Chart order and table columns.** The chart view builds its default sections from metric names (one section
  per ``prefix/`` in a name, sorted, then "Model metrics" alphabetically: ``rank_at_1`` lands among ``erm_*``
  and ``negatives``). MLflow's saved views are the supported way to ship another default: an experiment tag
  ``mlflow.sharedViewState.<key>`` holding the page's state, listed under the experiment's saved views and opened
  by ``viewStateShareKey=<key>``. apex saves one (``HEADLINE_VIEW``): runs sorted by the chosen stop point's
  *validation* rank@1 (what the stop was chosen on; sorting by a test figure invites choosing on test), the
  chosen stop's validation and test rank@1 in percent, the zero-shot test rank@1, the chosen step, the arm and
  the sweep parents' headline (difference, p, verdict) as the first columns; a first chart section "Retrieval"
  with the chosen stop's figures as bars and rank@1 (test and validation), nDCG@10, recall@10 and MRR@10 over
  training steps; every other metric keeps its default chart in the collapsed sections below.
- **Compare view.** The "compare runs" page (``#/compare-runs``) has no stored defaults: it always lists every
  param; its "show diff only" switch is per visit. The saved view's columns are the substitute.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

from apex.tracking import names

SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # MLflow's experiment tag prefix for saved views
HEADLINE_VIEW = "apex-chosen-stop"  # the key in ?viewStateShareKey=... (a new key: older stores get it added)
SECTION = "Retrieval"  # sorts before MLflow's default "Model metrics" section
MODEL_METRICS, SYSTEM_METRICS = "Model metrics", "System metrics"  # MLflow's own section names
SORT_METRIC = names.CHOSEN_VAL_RANK_AT_1
COLUMNS = (
    f"params.`{names.ARM_PARAM}`",
    *(f"metrics.`{m}`" for m in (names.CHOSEN_VAL_RANK_AT_1, names.CHOSEN_TEST_RANK_AT_1,
                                 names.ZERO_SHOT_TEST_RANK_AT_1, names.CHOSEN_STEP)),
    *(f"metrics.`{m}`" for m in (names.HEADLINE_DIFFERENCE, names.HEADLINE_CI_LOW, names.HEADLINE_CI_HIGH,
                                 names.HEADLINE_P)),
    f"tags.`{names.HEADLINE_VERDICT_TAG}`",
)  # fmt: skip
BAR_CHARTS = (names.CHOSEN_VAL_RANK_AT_1, names.CHOSEN_TEST_RANK_AT_1)


def _bar_chart(metric: str, section_id: str) -> dict:
    """One bar chart card (MLflow's RunsChartsBarCardConfig): the metric's latest value per run."""
    return {"uuid": str(uuid.uuid4()), "type": "BAR", "runsCountToCompare": 10, "metricSectionId": section_id,
            "deleted": False, "isGenerated": True, "metricKey": metric, "displayName": metric}  # fmt: skip


def _line_chart(metric: str, section_id: str) -> dict:
    """One line chart card (MLflow's RunsChartsLineCardConfig): metric over the training step."""
    return {
        "uuid": str(uuid.uuid4()), "type": "LINE", "runsCountToCompare": 10, "metricSectionId": section_id,
        "deleted": False, "isGenerated": True, "metricKey": metric, "displayName": metric, "lineSmoothness": 0,
        "xAxisScaleType": "linear", "scaleType": "linear", "xAxisKey": "step", "selectedXAxisMetricKey": "",
        "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True, "range": {},
    }  # fmt: skip


def _section(uid: str, name: str, display: bool = True) -> dict:
    return {"uuid": uid, "name": name, "display": display, "isReordered": False, "deleted": False, "isGenerated": True}


def headline_view_state() -> dict:
    """The page state of the saved view (the keys MLflow's experiment page restores from a saved view)."""
    sections = {name: str(uuid.uuid4()) for name in (SECTION, MODEL_METRICS, SYSTEM_METRICS)}
    charts = [_bar_chart(m, sections[SECTION]) for m in BAR_CHARTS]
    charts += [_line_chart(m, sections[SECTION]) for m in names.RETRIEVAL_CHARTS]
    return {
        "orderByKey": f"metrics.`{SORT_METRIC}`",
        "orderByAsc": False,
        "selectedColumns": ["attributes.`Source`", *COLUMNS],
        "compareRunCharts": charts,
        # The rest stays in MLflow's own sections, collapsed: opened by a click, out of the way of the answer.
        "compareRunSections": [_section(uid, name, name == SECTION) for name, uid in sections.items()],
        "isAccordionReordered": False,
        "hideEmptyCharts": True,
        "runsHiddenMode": "SHOW_ALL",
    }


def save_headline_view(client: MlflowClient, experiment_id: str) -> None:
    """Store the saved view on the experiment (once; a user who edits it keeps their version)."""
    tag = SHARED_VIEW_PREFIX + HEADLINE_VIEW
    if tag in client.get_experiment(experiment_id).tags:
        return
    now = int(time.time() * 1000)
    envelope = {"name": "apex: the chosen stop point first", "createdAt": now, "updatedAt": now,
                "state": json.dumps(headline_view_state())}  # fmt: skip
    client.set_experiment_tag(experiment_id, tag, json.dumps(envelope))


def experiment_url(tracking_uri: str, experiment_id: str, charts: bool = True) -> str | None:
    """The UI link that opens in model-training mode on the saved view; None for a store with no UI server."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return _link(tracking_uri.rstrip("/"), experiment_id, charts)


def _link(server: str, experiment_id: str, charts: bool) -> str:
    query = {"workflowType": "machine_learning", "viewStateShareKey": HEADLINE_VIEW}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{server}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def ui_hint(tracking_uri: str, experiment_id: str, port: int = 5000) -> str:
    """What to open: the link on a tracking server; for a SQLite file, the `mlflow ui` command, then the link.

    The command names the database by absolute path, so it works from any folder."""
    if tracking_uri.startswith(("http://", "https://")):
        return _link(tracking_uri.rstrip("/"), experiment_id, charts=False)
    store = tracking_uri
    if tracking_uri.startswith("sqlite:///"):
        store = "sqlite:///" + str(Path(tracking_uri.removeprefix("sqlite:///")).resolve())
    command = f"mlflow ui --backend-store-uri {store} --port {port}"
    return f"`{command}`, then open {_link(f'http://127.0.0.1:{port}', experiment_id, charts=False)}"
