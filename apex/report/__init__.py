"""The report: statistics, tables and figures for a sweep read back from MLflow (see docs/report.md).

Entry point: `python -m apex.report`. From Python: `build_report(ReportConfig.from_cfg({...}))`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apex.report.config import BaselineSpec, ReportConfig, ReportConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from apex.report.build import ReportResult

__all__ = ["BaselineSpec", "ReportConfig", "ReportConfigError", "build_report"]


def build_report(config: ReportConfig, client: MlflowClient | None = None) -> ReportResult:
    """Run the whole report (`apex.report.build.build_report`), imported lazily so `import apex.report` stays light."""
    from apex.report.build import build_report as _build

    return _build(config, client)
