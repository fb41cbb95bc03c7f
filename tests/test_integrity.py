"""Verify before use: store outputs and caches are checked against a content hash written last (issue 22, item 2).

Damage is injected on purpose (bytes rewritten with the right shape, files truncated, a dvc.lock entry removed) and
each reader must rebuild (caches, the store) or stop with one line naming the file and what to do (pinned outputs,
the ERM answer cache, store tables).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from apex.core.cli import exit_status, one_line
from apex.core.errors import InputError
from apex.core.integrity import SEAL_FILE, is_sealed, seal
from apex.erm.cache import DB_NAME, ErmCache, Outcome, Scope
from apex.erm.pipeline import parse_cached
from apex.eval.cache import Step0Cache
from apex.eval.retrieval import EvalResult
from apex.sampling.cache import BaseEmbeddingCache
from apex.store.config import StoreConfig
from apex.store.hashing import dvc_md5
from apex.store.outputs import read_maps, read_negatives
from apex.store.store import DataStore, StoreMismatch, build_into, seal_path


def write_table(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"doc_id": ["d1", "d2"], "text": ["alpha", "beta"]}).to_parquet(folder / "table.parquet")


def test_seal_detects_a_same_size_rewrite(tmp_path):
    write_table(tmp_path / "e")
    seal(tmp_path / "e")
    assert is_sealed(tmp_path / "e")
    data = bytearray((tmp_path / "e" / "table.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: same size, same shape for a shape check
    (tmp_path / "e" / "table.parquet").write_bytes(bytes(data))
    assert not is_sealed(tmp_path / "e")
    (tmp_path / "e" / SEAL_FILE).unlink()
    assert not is_sealed(tmp_path / "e")  # no seal: unfinished, never trusted


def test_a_damaged_store_entry_is_rebuilt_and_not_reported_stored(tmp_path):
    store = DataStore(tmp_path / "data", StoreConfig(), tmp_path / "dvc.lock")
    inputs = {"stage": "negatives", "seed": 0}
    calls: list[int] = []

    def build(out: Path) -> None:
        calls.append(1)
        write_table(out)

    first = store.get_or_build("negatives", inputs, build)
    assert first.status == "built" and seal_path(first.path).is_file()
    assert store.get_or_build("negatives", inputs, build).status == "stored" and len(calls) == 1
    pd.DataFrame({"doc_id": ["x"], "text": ["garbled"]}).to_parquet(first.path / "table.parquet")  # rewritten
    again = store.get_or_build("negatives", inputs, build)
    assert again.status == "built" and len(calls) == 2
    assert list(pd.read_parquet(again.path / "table.parquet")["doc_id"]) == ["d1", "d2"]


def pin(root: Path, lock: Path, stage: str, inputs: dict, record_in_lock: bool) -> Path:
    folder = root / stage
    build_into(folder, inputs, write_table)
    stages = {stage: {"outs": [{"path": f"data/{stage}", "md5": dvc_md5(folder)}]}} if record_in_lock else {}
    lock.write_text(yaml.safe_dump({"stages": stages}))
    return folder


def test_a_pinned_output_without_its_dvc_lock_entry_is_not_used(tmp_path):
    root, lock = tmp_path / "data", tmp_path / "dvc.lock"
    inputs = {"stage": "erm", "v": 1}
    folder = pin(root, lock, "erm", inputs, record_in_lock=False)
    with pytest.raises(StoreMismatch) as raised:
        DataStore(root, StoreConfig(on_mismatch="refuse"), lock).get_or_build("erm", inputs, write_table)
    line = one_line(raised.value)
    assert str(folder) in line and "has no entry in" in line and "dvc repro" in line
    assert exit_status(raised.value) == 2
    built = DataStore(root, StoreConfig(), lock).get_or_build("erm", inputs, write_table)
    assert built.status == "built" and built.path != folder  # the unverified pinned folder is not read
    pin(root, lock, "erm", inputs, record_in_lock=True)
    assert DataStore(root, StoreConfig(), lock).get_or_build("erm", inputs, write_table).status == "pinned"


def test_truncated_store_tables_name_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "maps.parquet").write_bytes(b"PAR1\x00\x01truncated")
    with pytest.raises(InputError, match=r"maps\.parquet: is not readable Parquet") as raised:
        read_maps(tmp_path, "train")
    assert "delete the output folder" in str(raised.value)
    (tmp_path / "sampler_stats.json").write_text("{}")
    (tmp_path / "negatives.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"negatives\.parquet: is not readable Parquet"):
        read_negatives(tmp_path)


def result() -> EvalResult:
    per_query = pd.DataFrame({"query_id": ["q1", "q2"], "rank": [1, 3]})
    return EvalResult(metrics={"rank_at_1": 0.9375}, per_query=per_query, run=None, seconds=1.5)


def test_step0_cache_replaces_a_damaged_entry(tmp_path, caplog):
    cache = Step0Cache(tmp_path)
    assert cache.save("k", result()) is True
    assert cache.load("k").metrics == {"rank_at_1": 0.9375}
    (tmp_path / "k" / "metrics.json").write_text(json.dumps({"rank_at_1": 0.123}), "utf-8")  # the probe's damage
    assert cache.load("k") is None and "damaged" in caplog.text
    assert cache.save("k", result()) is True  # replaced, not "kept"
    assert cache.load("k").metrics == {"rank_at_1": 0.9375}
    assert cache.save("k", result()) is False  # a sound entry is kept


class Fixed:
    """A deterministic encoder: vectors from the text lengths (the cache's keying is what is under test)."""

    def encode(self, texts, kind, **_):
        rows = np.array([[len(t), 1.0, 0.5] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def identity(self):
        return {"model": "fixed"}


def test_base_embedding_cache_recomputes_garbled_vectors(tmp_path):
    queries = pd.DataFrame({"query_id": ["q"], "text": ["a question"]})
    docs = pd.DataFrame({"doc_id": ["d1", "d2"], "text": ["one doc", "another document"]})
    cache = BaseEmbeddingCache(tmp_path)
    first = cache.load_or_encode(Fixed(), queries, docs, view="plain")
    assert not first.cache_hit
    garbled = first.documents[::-1].copy()  # right shape, unit rows, wrong order: passes every shape check
    np.save(first.path / "documents.npy", garbled)
    again = cache.load_or_encode(Fixed(), queries, docs, view="plain")
    assert not again.cache_hit and np.array_equal(again.documents, first.documents)
    assert cache.load_or_encode(Fixed(), queries, docs, view="plain").cache_hit


def test_damaged_erm_sqlite_names_the_file(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)  # a truncated database
    with pytest.raises(InputError, match="the ERM answer cache is damaged") as raised, ErmCache(tmp_path) as cache:
        cache.results(["k"])
    assert str(tmp_path / DB_NAME) in str(raised.value) and exit_status(raised.value) == 2


def test_malformed_stored_erm_answer_names_the_file_and_row(tmp_path):
    with ErmCache(tmp_path) as cache:
        scope = Scope("map", "spacy", "en_core_web_sm", "v1")
        cache.put(scope, [Outcome("k" * 64, "t", True, "{not json", "", 1)])
    with pytest.raises(InputError, match="malformed stored ERM answer") as raised:
        parse_cached("{not json", "k" * 64, tmp_path)
    assert str(tmp_path / DB_NAME) in str(raised.value) and "results key kkkk" in str(raised.value)
    assert sqlite3.connect(tmp_path / DB_NAME).execute("select count(*) from results").fetchone() == (1,)


def test_an_empty_corpus_is_named_not_blamed_on_the_qrels(tmp_path):
    from beir_folder import write_beir

    from apex.data.beir import read_beir_folder

    folder = write_beir(tmp_path / "b", [], [("q1", "a question")], {"train": [("q1", "d1", 1)]})
    with pytest.raises(InputError, match=r"corpus\.jsonl: holds no documents"):
        read_beir_folder(folder, ["train"])


def test_an_empty_test_split_names_its_file(tmp_path):
    from beir_folder import write_beir

    from apex.data.beir import load_beir

    folder = write_beir(
        tmp_path / "b", [("d1", "", "text one")], [("q1", "a question")], {"test": [("q1", "d1", 0)]}
    )  # only a "not relevant" judgement
    with pytest.raises(InputError, match=r"qrels/test\.tsv: holds no relevant judgement"):
        load_beir(folder, "test")
