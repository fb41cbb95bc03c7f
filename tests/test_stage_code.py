"""The code a stage's output depends on is declared once: dvc.yaml's code deps of each stage are exactly
`apex.store.keys.STAGE_CODE` (the code hashed into the output's store key), so `dvc repro` re-runs a stage exactly
when a run would stop finding its output under the same key."""

from __future__ import annotations

from pathlib import Path

import yaml

from apex.store import keys
from apex.store.store import PINNED

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_code_deps_are_stage_code() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text("utf-8"))["stages"]
    by_output = {Path(stage["outs"][0]).name: stage for stage in stages.values()}
    assert set(by_output) == set(PINNED.values()) == set(keys.STAGE_CODE)
    for name, stage in by_output.items():
        code = sorted(d.removeprefix("apex/") for d in stage["deps"] if d.startswith("apex/"))
        assert code == sorted(keys.STAGE_CODE[name]), name
        for part in code:
            assert (keys.REPO_CODE / part).exists(), part


def test_a_file_in_stage_code_moves_the_key(tmp_path: Path, monkeypatch) -> None:
    code = tmp_path / "apex"
    for part in keys.STAGE_CODE["erm"]:
        src = keys.REPO_CODE / part
        for path in [src] if src.is_file() else src.rglob("*.py"):
            (code / path.relative_to(keys.REPO_CODE)).parent.mkdir(parents=True, exist_ok=True)
            (code / path.relative_to(keys.REPO_CODE)).write_bytes(path.read_bytes())
    monkeypatch.setattr(keys, "REPO_CODE", code)
    before = keys.code_version("erm")
    (code / "core" / "registry.py").write_text((code / "core" / "registry.py").read_text() + "\n# edited\n")
    assert keys.code_version("erm") != before
