"""Loading, validating and splitting retrieval datasets (corpus, queries, qrels). Never imports MLflow."""

from apex.data.bundled import BUNDLED_SQUAD, BUNDLED_SQUAD_SHA256
from apex.data.config import DatasetConfig
from apex.data.dataset import Dataset, make_corpus, make_qrels, make_queries
from apex.data.loaders import LOADERS, load_dataset
from apex.data.splits import prepare_splits, split_by_document, splits_fingerprint, subsample_documents
from apex.data.storage import load_splits, read_manifest, save_splits

__all__ = [
    "BUNDLED_SQUAD",
    "BUNDLED_SQUAD_SHA256",
    "LOADERS",
    "Dataset",
    "DatasetConfig",
    "load_dataset",
    "load_splits",
    "make_corpus",
    "make_qrels",
    "make_queries",
    "prepare_splits",
    "read_manifest",
    "save_splits",
    "split_by_document",
    "splits_fingerprint",
    "subsample_documents",
]
