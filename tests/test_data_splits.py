"""Document splits (determinism, disjointness, no leaks), Parquet round trip and the prepare CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from apex.core.cli import guard
from apex.core.errors import InputError
from apex.data import (
    Dataset,
    DatasetConfig,
    load_splits,
    prepare_splits,
    save_splits,
    split_by_document,
    splits_fingerprint,
)
from apex.data.prepare import main as prepare_main
from apex.data.splits import resolve_sizes, subsample_documents

REPO = Path(__file__).resolve().parents[1]


def synthetic(n_docs: int = 10, queries_per_doc: int = 2) -> Dataset:
    corpus = [(f"d{i}", "", f"document {i}") for i in range(n_docs)]
    queries = [(f"q{i}.{j}", f"question {j} on {i}") for i in range(n_docs) for j in range(queries_per_doc)]
    qrels = [(f"q{i}.{j}", f"d{i}", 1) for i in range(n_docs) for j in range(queries_per_doc)]
    return Dataset.build("syn", "syn.src", corpus, queries, qrels)


def doc_ids(splits: dict[str, Dataset]) -> dict[str, list[str]]:
    return {name: ds.corpus["doc_id"].tolist() for name, ds in splits.items()}


SIZES = {"train": "rest", "val": 2, "test": 3}


def test_split_is_a_known_function_of_the_seed():
    # Hard-coded: the same seed must give this split in any process, on any machine (no global or hash state).
    assert doc_ids(split_by_document(synthetic(), SIZES, seed=0)) == {
        "train": ["d0", "d1", "d5", "d8", "d9"],
        "val": ["d3", "d7"],
        "test": ["d2", "d4", "d6"],
    }
    assert doc_ids(split_by_document(synthetic(), SIZES, seed=0)) == doc_ids(split_by_document(synthetic(), SIZES, 0))
    assert doc_ids(split_by_document(synthetic(), SIZES, seed=1)) != doc_ids(split_by_document(synthetic(), SIZES, 0))


def test_split_ignores_query_mode_and_file_order():
    ds = synthetic()
    by_all = doc_ids(split_by_document(ds, SIZES, seed=3))
    assert doc_ids(split_by_document(ds.first_query_per_document(), SIZES, seed=3)) == by_all
    shuffled = Dataset("syn", ds.corpus.iloc[::-1].reset_index(drop=True), ds.queries, ds.qrels, "syn.src")
    assert {k: sorted(v) for k, v in doc_ids(split_by_document(shuffled, SIZES, seed=3)).items()} == {
        k: sorted(v) for k, v in by_all.items()
    }


def test_split_keeps_each_documents_queries():
    splits = split_by_document(synthetic(), SIZES, seed=0)
    for ds in splits.values():
        ds.validate()
        assert len(ds.queries) == 2 * len(ds.corpus)
        assert set(ds.qrels["doc_id"]) == set(ds.corpus["doc_id"])


def test_query_relevant_across_splits_goes_to_its_first_documents_split(caplog):
    ds = synthetic(n_docs=10, queries_per_doc=1)
    # "wide" is relevant to every document; d6 (a test document at seed 0) is listed first, so wide belongs to test.
    wide = Dataset.build(
        "syn",
        "syn.src",
        ds.corpus.values.tolist(),
        [*ds.queries.values.tolist(), ["wide", "everything"]],
        [*ds.qrels.values.tolist(), *[["wide", f"d{i}", 1] for i in (6, 0, 1, 2, 3, 4, 5, 7, 8, 9)]],
    )
    with caplog.at_level("WARNING", logger="apex.data"):
        splits = split_by_document(wide, SIZES, seed=0)
    assert "d6" in splits["test"].corpus["doc_id"].tolist()
    homes = [name for name, part in splits.items() if "wide" in part.queries["query_id"].tolist()]
    assert homes == ["test"]
    assert sorted(splits["test"].qrels.query("query_id == 'wide'")["doc_id"]) == ["d2", "d4", "d6"]
    assert "7 qrels name a document in another split" in caplog.text  # 5 in train + 2 in val
    for part in splits.values():
        part.validate()


def test_resolve_sizes_fractions_rest_and_overflow():
    assert resolve_sizes({"train": "rest", "val": 0.1, "test": 0.25}, 10) == {"train": 6, "val": 1, "test": 3}
    with pytest.raises(ValueError, match="ask for 8 documents but the dataset has 4"):
        resolve_sizes({"train": 4, "val": 0, "test": 1.0}, 4)
    assert resolve_sizes({"train": 2, "val": 1, "test": 3}, 10) == {"train": 2, "val": 1, "test": 3}


def test_without_rest_leftover_documents_are_unused_and_logged(caplog):
    with caplog.at_level("INFO", logger="apex.data"):
        splits = split_by_document(synthetic(), {"train": 2, "val": 1, "test": 3}, seed=0)
    assert [len(s.corpus) for s in splits.values()] == [2, 1, 3]
    assert "4 documents are in no split" in caplog.text and "8 queries relevant only to them dropped" in caplog.text


def test_subsample_documents_is_seeded():
    ds = synthetic(n_docs=50, queries_per_doc=1)
    a, b = subsample_documents(ds, 20, seed=0), subsample_documents(ds, 20, seed=0)
    assert a.corpus["doc_id"].tolist() == b.corpus["doc_id"].tolist() and len(a.corpus) == 20
    assert len(a.queries) == 20
    assert subsample_documents(ds, 20, seed=1).corpus["doc_id"].tolist() != a.corpus["doc_id"].tolist()
    assert subsample_documents(ds, 500, seed=0) is ds


@pytest.fixture(scope="module")
def squad_splits():
    return prepare_splits(DatasetConfig.from_cfg({}))


def test_prepare_splits_on_bundled_squad(squad_splits):
    counts = {name: ds.counts() for name, ds in squad_splits.items()}
    assert counts["test"] == {"documents": 500, "queries": 500, "qrels": 500}
    assert counts["val"] == {"documents": 200, "queries": 200, "qrels": 200}
    assert counts["train"]["documents"] == 2067 - 700
    docs = {name: set(ds.corpus["doc_id"]) for name, ds in squad_splits.items()}
    assert not (docs["train"] & docs["val"]) and not (docs["train"] & docs["test"]) and not (docs["val"] & docs["test"])
    assert len(docs["train"] | docs["val"] | docs["test"]) == 2067
    queries = {name: set(ds.queries["query_id"]) for name, ds in squad_splits.items()}
    assert not (queries["train"] & queries["test"]) and not (queries["train"] & queries["val"])
    # val/test: exactly one query per document; train: every question of its documents (train_query_mode: all).
    for name in ("val", "test"):
        assert squad_splits[name].qrels["doc_id"].is_unique
    full = prepare_splits(DatasetConfig.from_cfg({"query_mode": "all"}))
    assert counts["train"]["queries"] == len(full["train"].queries)
    assert sum(len(ds.queries) for ds in full.values()) == 10570
    assert doc_ids(full) == doc_ids(squad_splits)


def test_prepare_splits_with_max_documents():
    splits = prepare_splits(
        DatasetConfig.from_cfg({"max_documents": 100, "splits": {"train": "rest", "val": 0.1, "test": 20}})
    )
    assert [len(s.corpus) for s in splits.values()] == [70, 10, 20]
    again = prepare_splits(
        DatasetConfig.from_cfg({"max_documents": 100, "splits": {"train": "rest", "val": 0.1, "test": 20}})
    )
    assert splits_fingerprint(splits) == splits_fingerprint(again)


def test_parquet_round_trip(tmp_path, squad_splits):
    out = save_splits(squad_splits, tmp_path / "prepared", config={"split_seed": 0})
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "manifest.json",
        *[f"{s}/{t}.parquet" for s in ("test", "train", "val") for t in ("corpus", "qrels", "queries")],
    ]
    loaded = load_splits(out)
    for name, ds in squad_splits.items():
        for table in ("corpus", "queries", "qrels"):
            pd.testing.assert_frame_equal(getattr(loaded[name], table), getattr(ds, table))
        assert (loaded[name].name, loaded[name].source) == (ds.name, ds.source)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == splits_fingerprint(squad_splits)
    assert manifest["splits"]["test"]["documents"] == 500 and manifest["config"] == {"split_seed": 0}
    # Saving again over our own folder replaces it; a foreign folder is refused.
    save_splits(squad_splits, out)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        save_splits(squad_splits, foreign)
    assert (foreign / "keep.txt").exists()


def test_load_splits_detects_tampering(tmp_path):
    splits = split_by_document(synthetic(), SIZES, seed=0)
    out = save_splits(splits, tmp_path / "p")
    corpus = pd.read_parquet(out / "val" / "corpus.parquet")
    corpus.loc[0, "text"] = corpus.loc[0, "text"] + "!"
    corpus.to_parquet(out / "val" / "corpus.parquet", index=False)
    with pytest.raises(InputError) as info:
        load_splits(out)
    assert (info.value.record, info.value.field) == ("val", "fingerprint")
    (out / "val" / "qrels.parquet").unlink()
    with pytest.raises(InputError, match="does not exist"):
        load_splits(out)


def test_prepare_cli_in_process(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": f"q{i}", "document": f"doc {i}"}) + "\n" for i in range(12)))
    params = tmp_path / "params.yaml"
    params.write_text(
        f"other: {{x: 1}}\ndataset:\n  name: jsonl_pairs\n  path: {pairs}\n  splits: {{train: rest, val: 2, test: 4}}\n"
    )
    assert prepare_main(["--params", str(params), "--out", str(tmp_path / "out")]) == 0
    loaded = load_splits(tmp_path / "out")
    assert [len(s.corpus) for s in loaded.values()] == [6, 2, 4]
    assert json.loads(capsys.readouterr().out)["counts"]["test"]["queries"] == 4
    params.write_text("dataset:\n  name: jsonl_pairs\n  pth: x\n")
    # the expected failure is raised; the command's guard turns it into one line and exit 2
    out2 = ["--params", str(params), "--out", str(tmp_path / "out2")]
    assert guard(prepare_main, "python -m apex.data.prepare", out2) == 2
    assert "dataset.pth: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_prepare_cli_module_with_repo_params(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = tmp_path / "prepared"
    result = subprocess.run(
        [sys.executable, "-m", "apex.data.prepare", "--params", str(REPO / "params.yaml"), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    # params.yaml pins the smoke run (arm=apex experiment=smoke): 250 documents, test 120, val 30, the rest train
    assert {s: manifest["splits"][s]["documents"] for s in ("train", "val", "test")} == {
        "train": 100,
        "val": 30,
        "test": 120,
    }
    assert manifest["config"]["splits"] == {"train": "rest", "val": 30, "test": 120}
    assert (out / "inputs.json").is_file()
