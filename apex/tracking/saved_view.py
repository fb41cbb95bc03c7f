"""The experiment page a user should land on: model-training mode, runs sorted by rank@1, rank@1 charted first.

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
  by ``viewStateShareKey=<key>``. apex saves one (``HEADLINE_VIEW``): runs sorted by test rank@1, the headline
  metrics as columns, and a first chart section "Retrieval" with rank@1 (test and validation), recall@10 and
  MRR@10 over training steps; every other metric keeps its default chart below.
- **Compare view.** The "compare runs" page (``#/compare-runs``) has no stored defaults: it always lists every
  param; its "show diff only" switch is per visit. The saved view's columns are the substitute.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # MLflow's experiment tag prefix for saved views
HEADLINE_VIEW = "apex-rank-at-1"  # the key in ?viewStateShareKey=...
HEADLINE_METRICS = ("rank_at_1", "val_rank_at_1", "recall_at_10", "mrr_at_10")
SECTION = "Retrieval"  # sorts before MLflow's default "Model metrics" section
MODEL_METRICS, SYSTEM_METRICS = "Model metrics", "System metrics"  # MLflow's own section names


def _line_chart(metric: str, section_id: str) -> dict:
    """One line chart card (MLflow's RunsChartsLineCardConfig): metric over the training step."""
    return {
        "uuid": str(uuid.uuid4()), "type": "LINE", "runsCountToCompare": 10, "metricSectionId": section_id,
        "deleted": False, "isGenerated": True, "metricKey": metric, "displayName": metric, "lineSmoothness": 0,
        "xAxisScaleType": "linear", "scaleType": "linear", "xAxisKey": "step", "selectedXAxisMetricKey": "",
        "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True, "range": {},
    }  # fmt: skip


def _section(uid: str, name: str) -> dict:
    return {"uuid": uid, "name": name, "display": True, "isReordered": False, "deleted": False, "isGenerated": True}


def headline_view_state() -> dict:
    """The page state of the saved view (the keys MLflow's experiment page restores from a saved view)."""
    sections = {name: str(uuid.uuid4()) for name in (SECTION, MODEL_METRICS, SYSTEM_METRICS)}
    return {
        "orderByKey": "metrics.`rank_at_1`",
        "orderByAsc": False,
        "selectedColumns": ["attributes.`Source`", *(f"metrics.`{m}`" for m in HEADLINE_METRICS)],
        "compareRunCharts": [_line_chart(m, sections[SECTION]) for m in HEADLINE_METRICS],
        "compareRunSections": [_section(uid, name) for name, uid in sections.items()],
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
    envelope = {"name": "apex: rank@1 first", "createdAt": now, "updatedAt": now,
                "state": json.dumps(headline_view_state())}  # fmt: skip
    client.set_experiment_tag(experiment_id, tag, json.dumps(envelope))


def experiment_url(tracking_uri: str, experiment_id: str, charts: bool = True) -> str | None:
    """The UI link that opens in model-training mode on the saved view; None for a store with no UI server."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    query = {"workflowType": "machine_learning", "viewStateShareKey": HEADLINE_VIEW}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"
