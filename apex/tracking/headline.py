"""The report's headline on the sweep's parent run, as metrics and tags, so the sweep's row in MLflow's runs table
answers the question the sweep asked (instead of a row of "-").

The report computes the numbers; this module only writes them, from plain values (no report types), so any caller
(the report, a notebook, another analysis) can use it::

    log_sweep_headline(client, parent_run_id, [Headline(metric="rank_at_1", difference=-0.006, ci_low=-0.058,
                       ci_high=0.047, p=0.69, verdict="no significant difference", comparison="arm=apex vs arm=plain",
                       stop=0.5, baseline=0.81, treatment=0.804)])

Values are in the metric's own units (fractions for rank@1, recall, MRR, nDCG); the metrics are logged in
percentage points (``_pts``) and percent (``_pct``), which MLflow's UI shows as plain numbers. The first comparison
gets the names of ``apex.tracking.names`` as they are; a sweep with several primary comparisons logs the k-th
(k >= 2) with the suffix ``_k`` (``headline_difference_pts_2``) and says which is which in the tags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from apex.core.secrets import scrub
from apex.tracking import names


@dataclass(frozen=True)
class Headline:
    """One primary comparison of a report: treatment minus baseline at the judged stop point."""

    metric: str  # e.g. "rank_at_1"
    difference: float  # treatment − baseline, in the metric's units
    ci_low: float  # the interval the verdict uses (adjusted for the family when there are several comparisons)
    ci_high: float
    p: float  # the primary test's p-value (before correction; the verdict says whether it survives it)
    verdict: str  # e.g. "significant", "no significant difference", "inconclusive after correction"
    comparison: str = ""  # e.g. "arm=apex vs arm=plain"
    stop: float | None = None  # the stop fraction the comparison was judged at
    baseline: float | None = None  # the baseline's mean, in the metric's units
    treatment: float | None = None
    level: float = 0.95

    def __post_init__(self) -> None:
        if not self.metric or not self.verdict:
            raise ValueError("Headline: metric and verdict must be non-empty")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"Headline: level must be in (0, 1), got {self.level}")

    def text(self) -> str:
        """One line: 'arm=apex vs arm=plain at stop 0.5: rank_at_1 −0.60 points (95% interval −5.80 to +4.70),
        p = 0.69: no significant difference'."""
        where = f" at stop {self.stop:g}" if self.stop is not None else ""
        head = f"{self.comparison}{where}: " if self.comparison or where else ""
        interval = f"{100 * self.level:.0f}% interval {_pts(self.ci_low)} to {_pts(self.ci_high)}"
        return f"{head}{self.metric} {_pts(self.difference)} points ({interval}), p = {self.p:.3g}: {self.verdict}"


def _pts(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.2f}"


def _suffix(index: int) -> str:
    return "" if index == 0 else f"_{index + 1}"


def headline_metrics(headlines: Sequence[Headline]) -> dict[str, float]:
    """The metrics logged for these comparisons (non-finite values are left out: MLflow shows them as "-")."""
    out: dict[str, float] = {}
    for index, h in enumerate(headlines):
        suffix = _suffix(index)
        values = {
            names.HEADLINE_DIFFERENCE: 100 * h.difference,
            names.HEADLINE_CI_LOW: 100 * h.ci_low,
            names.HEADLINE_CI_HIGH: 100 * h.ci_high,
            names.HEADLINE_P: h.p,
            names.HEADLINE_BASELINE: None if h.baseline is None else 100 * h.baseline,
            names.HEADLINE_TREATMENT: None if h.treatment is None else 100 * h.treatment,
        }
        out |= {k + suffix: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
    return out


def headline_tags(headlines: Sequence[Headline]) -> dict[str, str]:
    """Tags: metric, verdict and the one-line text per comparison, and their count."""
    tags = {names.HEADLINE_TAG_PREFIX + "count": str(len(headlines))}
    for index, h in enumerate(headlines):
        suffix = _suffix(index)
        tags |= {
            names.HEADLINE_METRIC_TAG + suffix: h.metric,
            names.HEADLINE_VERDICT_TAG + suffix: h.verdict,
            names.HEADLINE_TEXT_TAG + suffix: h.text(),
            names.HEADLINE_TAG_PREFIX + "comparison" + suffix: h.comparison,
        }
        if h.stop is not None:
            tags[names.HEADLINE_TAG_PREFIX + "stop" + suffix] = f"{h.stop:g}"
    return {k: scrub(v) for k, v in tags.items()}


def log_sweep_headline(client: MlflowClient, parent_run_id: str, headlines: Sequence[Headline]) -> dict[str, float]:
    """Log the headline of a report to the sweep's parent run (metrics and tags); returns the metrics logged.

    Works on a FINISHED parent (MLflow accepts metrics and tags on ended runs). Re-running the report logs the new
    figures as the metrics' latest values and overwrites the tags.
    """
    if not headlines:
        return {}
    metrics = headline_metrics(headlines)
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
    for key, value in headline_tags(headlines).items():
        client.set_tag(parent_run_id, key, value)
    return metrics
