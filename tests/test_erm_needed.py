"""ERMs at corpus scale: a run maps only the documents training reads (training positives and mined negatives),
says how many, reports the input-size reduction over them, and its maps are those the whole-corpus path made."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from beir_folder import write_beir
from hydra_conf import compose_config
from mlflow.tracking import MlflowClient

import apex.pipeline.recipe
from apex.core.errors import InputError
from apex.data import load_splits
from apex.erm.config import ErmConfig
from apex.erm.needed import needed_documents
from apex.store.outputs import write_maps

TOPICS = ["statins", "asthma", "vitamin", "sleep", "coffee", "kidney"]  # 0-3 train, 4 dev, 5 test


def needed_beir(folder: Path) -> Path:
    """Topic t's three documents answer its two queries; 40 documents about bread are judged for no query."""
    corpus = [
        (f"d{t}_{i}", f"{topic.title()} study {i}", f"Doctor Smith{i} studied {topic} in Boston in 199{i}.")
        for t, topic in enumerate(TOPICS)
        for i in range(3)
    ]
    corpus += [(f"bread{i}", "", f"Baker Jones{i} bakes bread with flour in Paris, recipe {i}.") for i in range(40)]
    queries = [(f"q{t}_{j}", f"what does {topic} do, question {j}?") for t, topic in enumerate(TOPICS) for j in (0, 1)]

    def judged(topics: range) -> list[tuple[str, str, int]]:
        return [(f"q{t}_{j}", f"d{t}_{i}", 1) for t in topics for j in range(2) for i in range(3)]

    return write_beir(folder, corpus, queries, {"train": judged(range(4)), "dev": judged(range(4, 5)),
                                                "test": judged(range(5, 6))})  # fmt: skip


def test_needed_documents_counts_a_positive_once_and_refuses_strangers() -> None:
    corpus = pd.DataFrame({"doc_id": ["a", "b", "c", "d", "e"]})
    qrels = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["b", "a", "c"], "relevance": [1, 2, 0]})
    negatives = pd.DataFrame({"doc_id": ["a", "d", "d"]})  # a: also a positive; d: twice
    needed = needed_documents(corpus, qrels, negatives)
    assert needed.ids == ("a", "b", "d")  # corpus order; c is judged not relevant, e is never read
    assert (needed.positives, needed.negatives, needed.corpus) == (2, 1, 5)
    assert needed.line() == "maps: 3 of 5 corpus documents needed: 2 training positives, 1 mined negatives"
    assert needed.key() != needed_documents(corpus, qrels, negatives.iloc[:1]).key()
    with pytest.raises(InputError, match="not in the training corpus"):
        needed_documents(corpus, qrels, pd.DataFrame({"doc_id": ["z"]}))


def test_a_run_maps_only_training_positives_and_mined_negatives(tmp_path: Path) -> None:
    folder = needed_beir(tmp_path / "beir")
    cfg = compose_config(
        "dataset=beir", f"dataset.path={folder}", "erm=spacy", "sampler=model_aware", "sampler.n_hard=1",
        "sampler.n_soft=1", "training.max_steps=1", "training.stop_points=[1.0]", "training.batch_size=8",
        "eval.on_val=false", "model.doc_max_length=64", "torch_threads=1", "progress=false",
        f"paths.experiments={tmp_path}", f"paths.data={tmp_path}/data",
    )  # fmt: skip
    summary = apex.pipeline.recipe.run(cfg, output_dir=str(tmp_path / "out"))
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(summary.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    train = load_splits(Path(tags["apex.data.prepared.path"]))["train"]
    assert len(train.corpus) == 58  # given splits: the training corpus is the whole corpus
    negatives = pd.read_parquet(Path(tags["apex.data.negatives.path"]) / "negatives.parquet")
    maps = pd.read_parquet(Path(tags["apex.data.erm.path"]) / "train" / "maps.parquet")

    positives = {f"d{t}_{i}" for t in range(4) for i in range(3)}
    needed = positives | set(negatives["doc_id"])
    assert 0 < len(negatives) <= 16 and set(maps["doc_id"]) == needed and len(maps) == len(needed)
    never_read = set(train.corpus["doc_id"]) - needed
    assert {"d4_0", "d5_0"} <= never_read and any(d.startswith("bread") for d in never_read)
    others = len(needed) - len(positives)
    assert summary.extra["maps"] == f"{len(needed)} of 58 corpus documents needed: 12 training positives, {others} " + (
        "mined negatives"
    )
    assert metrics["erm_needed_documents"] == len(needed) and metrics["erm_corpus_documents"] == 58
    assert metrics["n_docs"] == len(needed)  # the input-size reduction is over the mapped documents only
    assert f"over the {len(needed)} mapped training documents" in summary.extra["ERM input-size reduction (tokens)"]

    # The old path (every training document mapped, in a fresh answer cache): the same bytes for the needed ones.
    erm_cfg = ErmConfig.from_cfg(cfg.erm)
    write_maps({"train": train}, erm_cfg, tmp_path / "fresh_cache", tmp_path / "old", progress=False)
    whole = pd.read_parquet(tmp_path / "old" / "train" / "maps.parquet")
    assert len(whole) == 58
    restricted = whole[whole["doc_id"].isin(needed)].reset_index(drop=True)
    restricted.to_parquet(tmp_path / "restricted.parquet", index=False)
    new_file = Path(tags["apex.data.erm.path"]) / "train" / "maps.parquet"
    assert (tmp_path / "restricted.parquet").read_bytes() == new_file.read_bytes()
