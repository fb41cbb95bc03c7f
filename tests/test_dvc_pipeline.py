"""One chain of provenance, end to end in a temporary copy of the repo: `dvc repro` pins splits, negatives and maps
(mined before mapped: the negatives say which documents need maps); `apex.run` with the same config uses them
(computing nothing) and tags their hashes; a changed sampler value re-runs `negatives` and then `erm`, whose maps
stay the same bytes (SQuAD by_document: every training paragraph is a positive, so every one is needed whatever
the negatives), and a run with another value builds its own negatives into the store; push/pull round-trips;
`dvc repro --force` reproduces dvc.lock byte for byte. Slow: several DVC stages and two training runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra_conf import compose_config
from mlflow.tracking import MlflowClient

import apex.pipeline.recipe
import apex.store.stages
from apex.model.encoder import Encoder
from apex.store import keys
from apex.store.hashing import content_sha256, dvc_md5
from apex.store.store import StoreMismatch

REPO = Path(__file__).resolve().parents[1]
PINNED = ["arm=apex", "experiment=debug"]  # 60 documents: the tiny configuration this copy pins
OUTS = ("prepared", "erm", "negatives")
pytestmark = pytest.mark.slow


def sh(copy: Path, *cmd: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(copy), "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def locked(copy: Path) -> dict[str, str]:
    """Output folder name (prepared, erm, negatives) → the md5 dvc.lock records for it."""
    stages = yaml.safe_load((copy / "dvc.lock").read_text())["stages"].values()
    return {Path(out["path"]).name: out["md5"] for stage in stages for out in stage["outs"]}


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The repo's files (tracked and untracked, not ignored) in a fresh git repo, with a tiny pinned config."""
    copy = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    for name in listed.stdout.splitlines():
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    (copy / "dvc.lock").unlink(missing_ok=True)
    sh(copy, "git", "init", "-q")
    sh(copy, sys.executable, "-m", "apex.core.params_file", *PINNED)
    first = sh(copy, "dvc", "repro")
    assert all(f"Running stage '{name}'" in first for name in ("prepare", "erm", "negatives"))
    assert first.index("Running stage 'negatives'") < first.index("Running stage 'erm'")
    assert "Running stage" not in sh(copy, "dvc", "repro")  # a second repro runs nothing
    return copy


class Counted:
    """Wraps a function and counts its calls (ERM builds, negative mining, encoder calls)."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def run_in_process(copy: Path, tmp: Path, monkeypatch, *overrides: str):
    counts = {
        "write_maps": Counted(apex.store.stages.write_maps),
        "mine_negatives": Counted(apex.store.stages.mine_negatives),
        "encode": Counted(Encoder.encode),
    }
    monkeypatch.setattr(apex.store.stages, "write_maps", counts["write_maps"])
    monkeypatch.setattr(apex.store.stages, "mine_negatives", counts["mine_negatives"])
    monkeypatch.setattr(Encoder, "encode", lambda self, *a, **k: counts["encode"](self, *a, **k))
    monkeypatch.setattr(keys, "REPO_CODE", copy / "apex")  # the code the copy's DVC stages ran (the same files)
    cfg = compose_config(
        *PINNED,
        *overrides,
        "training.max_steps=1",  # training and eval keys determine no stored output
        "eval.on_val=false",
        "torch_threads=1",
        f"paths.data={copy}/data",
        f"paths.dvc_lock={copy}/dvc.lock",
        f"paths.experiments={tmp}",
    )
    summary = apex.pipeline.recipe.run(cfg, output_dir=str(tmp / "out"))
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    return summary, client.get_run(summary.run_id), client, {k: c.calls for k, c in counts.items()}


def test_run_uses_the_pinned_outputs_and_tags_their_hashes(copy, tmp_path, monkeypatch) -> None:
    summary, run, client, calls = run_in_process(copy, tmp_path, monkeypatch)
    assert summary.extra["data store"] == "splits pinned, maps pinned, negatives pinned"
    # Nothing recomputed: no ERM build, no mining, and the encoder only embeds for evaluation (steps 0 and 1).
    assert calls == {"write_maps": 0, "mine_negatives": 0, "encode": 4}
    lock = locked(copy)
    for name in OUTS:
        assert run.data.tags[f"apex.data.{name}.status"] == "pinned"
        assert run.data.tags[f"apex.data.{name}.dvc_md5"] == lock[name] == dvc_md5(copy / "data" / name)
        assert run.data.tags[f"apex.data.{name}.sha256"] == content_sha256(copy / "data" / name)
    logged = client.download_artifacts(run.info.run_id, "provenance/dvc.lock", str(tmp_path / "dl"))
    assert Path(logged).read_bytes() == (copy / "dvc.lock").read_bytes()


def test_a_sampler_change_reruns_negatives_then_erm_and_runs_build_their_own(copy, tmp_path, monkeypatch) -> None:
    before = locked(copy)
    sh(copy, sys.executable, "-m", "apex.core.params_file", *PINNED, "sampler.n_hard=3")
    out = sh(copy, "dvc", "repro")
    assert (
        "Running stage 'negatives'" in out
        and "Running stage 'erm'" in out  # its input, the negatives, changed
        and "'prepare'" not in out.replace("Stage 'prepare' didn't change, skipping", "")
    )
    after = locked(copy)
    assert after["prepared"] == before["prepared"] and after["erm"] == before["erm"]  # the same needed documents
    assert after["negatives"] != before["negatives"]

    with pytest.raises(StoreMismatch, match="other inputs"):  # n_hard=1 is not pinned: refuse stops the run
        run_in_process(copy, tmp_path / "refused", monkeypatch, "sampler.n_hard=1", "store.on_mismatch=refuse")
    summary, run, _, calls = run_in_process(copy, tmp_path / "built", monkeypatch, "sampler.n_hard=1")
    assert summary.extra["data store"] == "splits pinned, maps pinned, negatives built"
    assert calls["mine_negatives"] == 1 and calls["write_maps"] == 0
    stored = Path(run.data.tags["apex.data.negatives.path"])
    assert stored.parent == copy / "data" / "store" / "negatives" and (stored / "inputs.json").is_file()
    assert run.data.tags["apex.data.negatives.sha256"] == content_sha256(stored)
    summary, _, _, calls = run_in_process(copy, tmp_path / "again", monkeypatch, "sampler.n_hard=1")
    assert summary.extra["data store"].endswith("negatives stored") and calls["mine_negatives"] == 0


def test_push_pull_round_trip_and_forced_repro_reproduce_the_lock(copy) -> None:
    data = copy / "data"
    hashes = {name: content_sha256(data / name) for name in OUTS}
    lock = locked(copy)
    sh(copy, "dvc", "push")  # the default remote: experiments/dvc-remote (.dvc/config)
    for name in OUTS:
        shutil.rmtree(data / name)
    shutil.rmtree(copy / ".dvc" / "cache")
    sh(copy, "dvc", "pull")
    assert {name: content_sha256(data / name) for name in OUTS} == hashes
    shutil.rmtree(copy / "experiments" / "cache")  # no ERM answers, no base embeddings: everything rebuilt
    sh(copy, "dvc", "repro", "--force")
    assert locked(copy) == lock
