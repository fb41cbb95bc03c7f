"""Score any sentence-transformers model (an apex export, the base model, anyone's) the way the field does.

Three scorers over one `apex.data.Dataset` (queries, corpus, qrels), all encoding with the model's own
`encode_query` / `encode_document` (its prompts, its max length, cosine similarity over the whole corpus):

- `harness_scores`: apex's metrics (`apex.eval.evaluate_embeddings`: rank@1, recall@k, MRR@10, graded nDCG@10), the
  figures a run logs, so an export re-scored here reproduces its run;
- `st_evaluator_scores`: sentence-transformers' `InformationRetrievalEvaluator`, renamed to apex's names. It takes
  relevance as a set, so its nDCG is binary: it equals the harness's nDCG on binarised qrels (`binary=True`);
- `mteb_scores`: the `mteb` package (optional extra `apex[mteb]`) running the same data as an MTEB retrieval task
  built from local files (`local_mteb_task`): MTEB's own evaluation code, graded nDCG@10 (pytrec_eval), no hub.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from apex.data import Dataset
from apex.eval.retrieval import evaluate_embeddings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger("apex.eval")
ST_NAMES = {"accuracy@1": "rank_at_1", "recall@{k}": "recall_at_{k}", "mrr@10": "mrr_at_10", "ndcg@10": "ndcg_at_10"}


def quiet_libraries() -> None:
    """No library progress bars off a terminal (apex.core.progress); no mteb deprecation notes about its own calls."""
    import warnings

    from apex.core.progress import on_terminal

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mteb(\.|$)")
    if not on_terminal():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"


def encode(model: SentenceTransformer, split: Dataset, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(queries, documents) embeddings, float32, as a user of the model would compute them."""
    kwargs = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": False}
    queries = model.encode_query(list(split.queries["text"]), **kwargs)
    documents = model.encode_document(list(split.corpus["text"]), **kwargs)
    return np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)


def harness_scores(
    model: SentenceTransformer,
    split: Dataset,
    ks: tuple[int, ...] = (1, 5, 10),
    batch_size: int = 32,
    binary: bool = False,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """apex's metrics of the model on `split`; `binary` counts every judged-relevant document as gain 1."""
    queries, documents = embeddings if embeddings is not None else encode(model, split, batch_size)
    qrels = split.qrels.assign(relevance=1) if binary else split.qrels
    result = evaluate_embeddings(queries, documents, split.queries, split.corpus, qrels, ks=ks)
    return dict(result.metrics)


def st_evaluator_scores(model: SentenceTransformer, split: Dataset, k: int = 10, batch_size: int = 32) -> dict:
    """sentence-transformers' InformationRetrievalEvaluator on `split`, under apex's metric names."""
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    evaluator = InformationRetrievalEvaluator(
        queries=dict(zip(split.queries["query_id"], split.queries["text"], strict=True)),
        corpus=dict(zip(split.corpus["doc_id"], split.corpus["text"], strict=True)),
        relevant_docs={q: set(g["doc_id"]) for q, g in split.qrels.groupby("query_id")},
        accuracy_at_k=[1], precision_recall_at_k=[k], mrr_at_k=[10], ndcg_at_k=[10], map_at_k=[10],
        batch_size=batch_size, show_progress_bar=False, name="apex", score_functions=None,
    )  # fmt: skip
    scores = evaluator(model)
    names = {n.format(k=k): v.format(k=k) for n, v in ST_NAMES.items()}
    return {ours: float(scores[f"apex_cosine_{theirs}"]) for theirs, ours in names.items()}


def local_mteb_task(split: Dataset, name: str, split_name: str = "test") -> Any:
    """An MTEB retrieval task whose data are `split` (no hub access): MTEB's metrics on local files."""
    from datasets import Dataset as HFDataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    corpus = HFDataset.from_dict({"id": list(split.corpus["doc_id"]), "text": list(split.corpus["text"])})
    queries = HFDataset.from_dict({"id": list(split.queries["query_id"]), "text": list(split.queries["text"])})
    relevant: dict[str, dict[str, int]] = {}
    for query_id, doc_id, relevance in split.qrels[["query_id", "doc_id", "relevance"]].itertuples(index=False):
        relevant.setdefault(str(query_id), {})[str(doc_id)] = int(relevance)
    data = {"default": {split_name: {"corpus": corpus, "queries": queries, "relevant_docs": relevant,
                                     "top_ranked": None}}}  # fmt: skip

    class LocalRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=name, description=f"apex: {split.name} read from local files", reference=None,
            dataset={"path": f"local/{name}", "revision": "local"}, type="Retrieval", category="t2t",
            modalities=["text"], eval_splits=[split_name], eval_langs=["eng-Latn"], main_score="ndcg_at_10",
            date=None, domains=None, task_subtypes=None, license=None, annotations_creators=None, dialect=None,
            sample_creation=None, bibtex_citation=None,
        )  # fmt: skip

        def load_data(self, *args: Any, **kwargs: Any) -> None:
            self.dataset, self.data_loaded = data, True

    return LocalRetrieval()


def mteb_scores(model: SentenceTransformer, split: Dataset, name: str = "ApexLocalRetrieval") -> dict[str, float]:
    """MTEB's retrieval scores of the model on `split` (main score graded nDCG@10), under apex's names."""
    import mteb

    task = local_mteb_task(split, name)
    results = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False)
    scores = results.task_results[0].scores["test"][0]
    keys = {"ndcg_at_10": "ndcg_at_10", "recall_at_10": "recall_at_10", "mrr_at_10": "mrr_at_10",
            "precision_at_1": "rank_at_1"}  # fmt: skip
    return {ours: float(scores[theirs]) for theirs, ours in keys.items() if theirs in scores}
