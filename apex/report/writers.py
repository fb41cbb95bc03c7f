"""Write every output file of a report into its folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from apex.report.markdown import render
from apex.report.tables import write_csv, write_json, write_latex

if TYPE_CHECKING:
    from apex.report.build import ReportData


def write_all(data: ReportData, out_dir: Path) -> list[Path]:
    """results.csv, results.json, table.tex, figures/*.png, then report.md (which links the figures)."""
    files = []
    if data.config.figures:
        from apex.report.figures import write_figures  # matplotlib only when figures are wanted

        files += write_figures(data, out_dir)
    files += [
        write_csv(data, out_dir / "results.csv"),
        write_json(data, out_dir / "results.json"),
        write_latex(data, out_dir / "table.tex"),
    ]
    report = out_dir / "report.md"
    report.write_text(
        render(data, [p.relative_to(out_dir).as_posix() for p in files if p.suffix == ".png"]), encoding="utf-8"
    )
    return [*files, report]
