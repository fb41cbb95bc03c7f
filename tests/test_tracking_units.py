"""Params flattening, cell identity, secret scrubbing, git provenance."""

from __future__ import annotations

import subprocess

import pytest

from apex.core.secrets import reject_secrets_in_config, scrub
from apex.tracking import as_params, cell_hash, cell_label, flatten
from apex.tracking.provenance import git_state


def test_flatten_namespaces_and_lists() -> None:
    flat = flatten({"training": {"lr": 1e-4, "lora": {"r": 8}, "stop_points": [0.5, 1.0]}, "seed": 3, "x": None})
    assert flat == {
        "training.lr": 1e-4,
        "training.lora.r": 8,
        "training.stop_points": "[0.5, 1.0]",
        "seed": 3,
        "x": None,
    }
    params = as_params({**flat, "long": "a" * 7000})
    assert params["x"] == "null" and len(params["long"]) == 6000


def test_cell_ignores_seed_and_tracking_only() -> None:
    base = {"seed": 0, "training.lr": 1e-4, "tracking.uri": "sqlite:///a.db", "erm.name": "none"}
    assert cell_hash(base) == cell_hash({**base, "seed": 7, "tracking.uri": "http://127.0.0.1:5000"})
    assert cell_hash({**base, "model.cache_dir": "a/models"}) == cell_hash({**base, "model.cache_dir": "/b/models"})
    assert cell_hash(base) != cell_hash({**base, "training.lr": 2e-4})
    assert cell_hash(base) != cell_hash({**base, "erm.name": "spacy"})
    assert len(cell_hash(base)) == 12


def test_cell_label_drops_seed() -> None:
    assert cell_label(["seed=1", "experiment=smoke", "erm=spacy"]) == "erm=spacy experiment=smoke"
    assert cell_label(["seed=1"]) == "default"


def test_scrub_hides_environment_secrets_and_key_shapes() -> None:
    env = {"OPENAI_API_KEY": "sk-test-abcdef123456", "HOME": "/root", "MY_TOKEN": "tok-999999"}
    text = "key sk-test-abcdef123456 token tok-999999 home /root other sk-live-ZZZZZZZZZZZZ"
    assert scrub(text, env) == "key *** token *** home /root other ***"


def test_secret_in_config_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "abcdefghijkl")
    with pytest.raises(ValueError, match=r"erm\.api_key"):
        reject_secrets_in_config({"erm.api_key": "abcdefghijkl"})
    with pytest.raises(ValueError, match="looks like a secret"):
        reject_secrets_in_config({"erm.note": "sk-proj-0123456789abcdef"})
    reject_secrets_in_config({"erm.name": "gpt4o", "training.lr": 1e-4})


def test_git_state_outside_a_repository(tmp_path) -> None:
    assert git_state(tmp_path) == ("unknown", True)


def test_git_dirty_means_the_code_changed_not_that_a_report_was_written(tmp_path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert git_state(tmp_path)[1] is False
    (tmp_path / "reports" / "sweep-1").mkdir(parents=True)
    (tmp_path / "reports" / "sweep-1" / "report.md").write_text("# a report\n")
    assert git_state(tmp_path / "reports")[1] is False  # a generated report is not a code change, from any folder
    (tmp_path / "new_module.py").write_text("y = 2\n")
    assert git_state(tmp_path)[1] is True  # an added, not ignored file is
    (tmp_path / "new_module.py").unlink()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)[1] is True  # so is an edit
