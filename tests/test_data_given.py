"""dataset.split=given: a BEIR folder's own splits, whole-corpus ranking, the dev carve-out, errors."""

from __future__ import annotations

import logging

import pytest
from beir_folder import topical_beir

from apex.core.errors import InputError
from apex.data import DatasetConfig, prepare_splits
from apex.data.given import carve_out


def given(path, **overrides) -> DatasetConfig:
    values = {"name": "beir", "path": str(path), "split": "given", "query_mode": "all", **overrides}
    return DatasetConfig.from_cfg(values)


def test_given_splits_use_the_folders_qrels_and_the_whole_corpus(tmp_path, caplog) -> None:
    folder = topical_beir(tmp_path / "beir")
    with caplog.at_level(logging.WARNING, logger="apex.data"):
        splits = prepare_splits(given(folder, max_documents=5))  # ignored: given ranks against the whole corpus
    ids = {name: set(ds.queries["query_id"]) for name, ds in splits.items()}
    # q0_0 is judged in train and test: it stays in test only (logged), so no training query is ever tested on.
    assert ids["train"] == {f"q{t}_{j}" for t in range(4) for j in range(3)} - {"q0_0"}
    assert ids["val"] == {f"q{t}_{j}" for t in (4, 5) for j in range(3)}
    assert ids["test"] == {f"q{t}_{j}" for t in (6, 7) for j in range(3)} | {"q0_0"}
    assert not ids["train"] & (ids["val"] | ids["test"])
    assert "also judged in test" in caplog.text and "max_documents is ignored" in caplog.text
    for ds in splits.values():
        assert len(ds.corpus) == 40  # every split is ranked against all 40 documents
    test_qrels = splits["test"].qrels
    # graded judgements kept, score 0 dropped, several relevant documents per query
    assert sorted(test_qrels[test_qrels["query_id"] == "q6_0"]["relevance"]) == [1, 1, 2]
    assert len(splits["train"].qrels[splits["train"].qrels["query_id"] == "q1_0"]) == 5


def test_carve_out_when_there_is_no_dev_file_is_seeded_and_disjoint(tmp_path) -> None:
    folder = topical_beir(tmp_path / "beir", with_dev=False)
    first = prepare_splits(given(folder, val_from_train=3, split_seed=4))
    again = prepare_splits(given(folder, val_from_train=3, split_seed=4))
    other = prepare_splits(given(folder, val_from_train=0.25, split_seed=5))
    val = set(first["val"].queries["query_id"])
    assert val == set(again["val"].queries["query_id"]) and len(val) == 3
    assert not val & set(first["train"].queries["query_id"])
    assert val | set(first["train"].queries["query_id"]) == {f"q{t}_{j}" for t in range(4) for j in range(3)} - {"q0_0"}
    assert len(other["val"].queries) == 3  # round(0.25 * 11)
    # the carve-out depends on the ids and the seed only, not on their order
    ids = [f"q{i}" for i in range(50)]
    assert carve_out(ids, 0.2, 1) == carve_out(list(reversed(ids)), 0.2, 1)
    assert carve_out(ids, 0.2, 1) != carve_out(ids, 0.2, 2)


def test_missing_train_qrels_is_one_clear_error(tmp_path) -> None:
    folder = topical_beir(tmp_path / "beir")
    (folder / "qrels" / "train.tsv").unlink()
    with pytest.raises(InputError) as err:
        prepare_splits(given(folder))
    assert "train.tsv" in str(err.value) and "by_document" in str(err.value)


def test_title_join_and_config_checks(tmp_path) -> None:
    folder = topical_beir(tmp_path / "beir")
    joined = prepare_splits(given(folder, join_title=True))["test"].corpus
    plain = prepare_splits(given(folder))["test"].corpus
    assert joined["text"][0] == "Statins study 0 A report number 0 about statins and its effects on health."
    assert plain["text"][0] == "A report number 0 about statins and its effects on health."
    with pytest.raises(InputError, match="split"):
        DatasetConfig.from_cfg({"name": "squad", "split": "given"})
    with pytest.raises(InputError, match="split"):
        DatasetConfig.from_cfg({"name": "beir", "path": "x", "split": "by_query"})
    with pytest.raises(InputError, match="val_from_train"):
        DatasetConfig.from_cfg({"name": "beir", "path": "x", "val_from_train": 1.5})
