"""The DVC entry point `python -m apex.sampling.mine`: splits in, negatives + stats + figure out."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from apex.core.cli import guard
from apex.data import Dataset, save_splits
from apex.sampling.mine import main


class HashEncoder:
    """A deterministic vector per (kind, text); remembers every text it embedded."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, kind, show_progress=False):
        self.seen.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{kind}:{text}".encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(8)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)

    def identity(self):
        return {"source": "hash", "weights": "none"}


def tiny_dataset(split: str) -> Dataset:
    docs = [(f"{split}-d{i}", "title", f"{split} paragraph {i}") for i in range(30)]
    queries = [(f"{split}-q{i}", f"{split} question {i}") for i in range(10)]
    qrels = [(f"{split}-q{i}", f"{split}-d{i}", 1) for i in range(10)]
    return Dataset.build(split, "test", docs, queries, qrels)


@pytest.fixture
def workspace(tmp_path):
    save_splits({s: tiny_dataset(s) for s in ("train", "val", "test")}, tmp_path / "prepared")
    params = {
        "seed": 3,
        "paths": {"cache_dir": str(tmp_path / "cache")},
        "model": {"name": "fake", "source": "fake"},
        "sampler": {
            "name": "model_aware",
            "n_hard": 1,
            "n_soft": 1,
            "candidate_k": 20,
            "soft": {"by": "rank", "low": 10, "high": 20},
            "guard": {"max_relative_to_positive": None},  # random vectors: the positive is not near the top
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def run(workspace, *extra, encoder=None):
    encoder = encoder or HashEncoder()
    argv = [
        "--params",
        str(workspace / "params.yaml"),
        "--splits",
        str(workspace / "prepared"),
        "--out",
        str(workspace / "negatives"),
        *extra,
    ]
    assert main([*argv, "--no-progress"], encoder_factory=lambda cfg: encoder) == 0
    return encoder


def test_mines_the_train_split(workspace) -> None:
    encoder = run(workspace)
    negatives = pd.read_parquet(workspace / "negatives" / "negatives.parquet")
    assert len(negatives) == 20 and negatives["query_id"].str.startswith("train-").all()
    assert set(encoder.seen) == {f"train question {i}" for i in range(10)} | {f"train paragraph {i}" for i in range(30)}
    first = (workspace / "negatives" / "sampler_stats.json").read_bytes()
    stats = json.loads(first)
    assert stats["seed"] == 3 and stats["view"] == "plain" and "cache_hit" not in stats and "timings_s" not in stats
    assert (workspace / "cache" / "base_embeddings" / stats["cache_key"] / "manifest.json").is_file()
    again = run(workspace)  # a second run (another stage invocation) reads the cache
    assert again.seen == []
    # Same inputs, same bytes: a cache hit and other timings leave the pinned files unchanged.
    assert (workspace / "negatives" / "sampler_stats.json").read_bytes() == first
    assert json.loads((workspace / "negatives" / "inputs.json").read_text())["inputs"]["view"] == "plain"


def test_the_erm_stage_maps_exactly_the_positives_and_mined_negatives(workspace, caplog) -> None:
    """negatives → erm, as dvc.yaml chains them: the maps hold the training positives and the mined negatives, and
    no other training document; the stage says how many of the corpus it needed."""
    from apex.erm.build import main as build_maps_stage

    run(workspace)
    negatives = pd.read_parquet(workspace / "negatives" / "negatives.parquet")
    positives = {f"train-d{i}" for i in range(10)}
    needed = positives | set(negatives["doc_id"])  # a negative of one query may be another query's positive
    others = len(needed) - 10
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    (workspace / "params.yaml").write_text(
        yaml.safe_dump({**params, "erm": {"name": "spacy"}, "eval": {"view": "plain"}})
    )
    argv = ["--params", str(workspace / "params.yaml"), "--splits", str(workspace / "prepared"), "--out",
            str(workspace / "erm"), "--negatives", str(workspace / "nowhere"), "--no-progress"]  # fmt: skip
    assert (
        guard(build_maps_stage, "python -m apex.erm.build", argv) == 2
    )  # no negatives stage output: one clear error, no maps of everything
    argv[argv.index("--negatives") + 1] = str(workspace / "negatives")
    with caplog.at_level("INFO", logger="apex.erm"):
        assert build_maps_stage(argv) == 0
    maps = pd.read_parquet(workspace / "erm" / "train" / "maps.parquet")
    assert set(maps["doc_id"]) == needed and len(maps) == len(needed) < 30
    assert f"maps: {len(needed)} of 30 corpus documents needed: 10 training positives, {others} mined" in caplog.text
    inputs = json.loads((workspace / "erm" / "inputs.json").read_text())["inputs"]
    assert inputs["needed"]["train"]["documents"] == len(needed)
    assert not (workspace / "erm" / "val").exists()  # eval.view=plain: evaluation reads no maps


def test_in_batch_loads_no_model(workspace) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["sampler"] = {"name": "in_batch"}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))

    def refuse(cfg):
        raise AssertionError("in_batch must not load a model")

    argv = [
        "--params",
        str(workspace / "params.yaml"),
        "--splits",
        str(workspace / "prepared"),
        "--out",
        str(workspace / "negatives"),
    ]
    assert main(argv, encoder_factory=refuse) == 0
    assert pd.read_parquet(workspace / "negatives" / "negatives.parquet").empty
