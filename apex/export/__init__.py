"""Export a run's stop point as a sentence-transformers model (merged LoRA), an MLflow model, a model card."""

from apex.core.lazy import lazy_exports

_EXPORTS = {"ExportError": "source", "ExportResult": "export", "export_run": "export"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["ExportError", "ExportResult", "export_run"]
