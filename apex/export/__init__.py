"""Export a run's stop point as a sentence-transformers model (merged LoRA), an MLflow model, a model card."""

from apex.export.export import ExportResult, export_run
from apex.export.source import ExportError

__all__ = ["ExportError", "ExportResult", "export_run"]
