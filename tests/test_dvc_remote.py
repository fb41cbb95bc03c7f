"""DVC remotes as the README documents them, in a fresh `git clone`: the committed default remote is per clone
(inside the clone's git-ignored experiments/), so a fresh clone has nothing to pull from it; one command,
`dvc remote add -d --local shared DIR`, points a clone at a shared location, and then `dvc pull` restores the
outputs byte for byte. A tiny project with apex's own .dvc/config and .gitignore stands in for the repository
(the real pipeline's push/pull round trip is in test_dvc_pipeline.py, marked slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = "python -c \"import pathlib; pathlib.Path('data/prepared').mkdir(parents=True, exist_ok=True); " \
        "pathlib.Path('data/prepared/split.txt').write_text('the prepared split')\""  # fmt: skip


def sh(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def test_a_fresh_clone_pulls_after_one_command(tmp_path: Path) -> None:
    origin, shared = tmp_path / "origin", tmp_path / "shared-dvc"
    origin.mkdir()
    sh(origin, "git", "init", "-q")
    sh(origin, "dvc", "init", "-q")
    shutil.copy2(REPO / ".dvc" / "config", origin / ".dvc" / "config")  # apex's committed remote settings
    shutil.copy2(REPO / ".gitignore", origin / ".gitignore")
    sh(origin, "dvc", "stage", "add", "-q", "-n", "prepare", "-o", "data/prepared", STAGE)
    sh(origin, "dvc", "repro", "-q")
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-qm", "pipeline")
    sh(origin, "dvc", "push", "-q")  # the committed default: this clone's own experiments/dvc-remote
    assert (origin / "experiments" / "dvc-remote").is_dir()

    fresh = tmp_path / "fresh"
    sh(tmp_path, "git", "clone", "-q", str(origin), str(fresh))
    assert not (fresh / "experiments" / "dvc-remote").exists()  # git-ignored: a remote per clone, as documented
    failed = sh(fresh, "dvc", "pull", ok=False)
    assert failed.returncode != 0 and not (fresh / "data" / "prepared").exists()

    # The README's one command, in each clone (local config: not committed); the first clone pushes once.
    for clone in (origin, fresh):
        sh(clone, "dvc", "remote", "add", "-d", "--local", "shared", str(shared))
    sh(origin, "dvc", "push", "-q")
    sh(fresh, "dvc", "pull", "-q")
    assert (fresh / "data" / "prepared" / "split.txt").read_text() == "the prepared split"
    assert sh(fresh, "git", "status", "--porcelain").stdout == ""  # the command left nothing to commit
