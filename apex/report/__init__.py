"""The report: statistics, tables and figures for a sweep read back from MLflow (see docs/report.md).

Entry point: `python -m apex.report`. From Python: `build_report(ReportConfig.from_cfg({...}))`.
"""

from apex.report.config import BaselineSpec, ReportConfig, ReportConfigError

__all__ = ["BaselineSpec", "ReportConfig", "ReportConfigError", "build_report"]


def build_report(config: ReportConfig, client=None):  # noqa: ANN001, ANN201 - thin lazy wrapper
    """Run the whole report (see `apex.report.build.build_report`); imported lazily to keep `import apex.report` light."""
    from apex.report.build import build_report as _build

    return _build(config, client)
