"""The command line and every composed config are checked before Hydra writes anything (apex.core.precheck).

In-process probes (fast) of the checks, and subprocess probes of the acceptance: a typo exits 2 in seconds naming
the key and the closest known one, with or without `+`, and nothing is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apex_cli import REPO

from apex.core.errors import ConfigError
from apex.core.precheck import compose, precheck, schema_keys, split_argv

PASSWORD = "hunter2-Pass-77"


def test_schema_keys_hold_nested_and_job_keys():
    keys, _ = schema_keys()
    assert {"training.lr", "training.lora.r", "sampler.hard.low", "seed", "resume", "paths.data"} <= keys
    assert "model.cache_dir" not in keys  # a location: set in the paths group


@pytest.mark.parametrize("override", ["trainig.lr=1e-3", "+trainig.lr=1e-3", "training.lrr=1e-3", "+training.lrr=1"])
def test_a_typo_names_the_key_and_the_close_known_one(override):
    with pytest.raises(ConfigError, match=r"unknown key.*did you mean 'training\.lr'\?") as raised:
        precheck([override])
    assert raised.value.key == override.lstrip("+").split("=")[0]


def test_unknown_group_option_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"no option 'spcy' in conf/erm/; did you mean 'spacy'\?"):
        precheck(["erm=spcy"])
    with pytest.raises(ConfigError, match="no option 'nope'"):
        precheck(["-m", "arm=plain,nope"])


def test_plus_on_a_schema_key_is_its_plain_override():
    assert precheck(["-m", "+resume=my-sweep", "seed=0,1"]) == ["-m", "resume=my-sweep", "seed=0,1"]
    assert precheck(["+seed=3"]) == ["seed=3"]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("training.lr=nan", "training.lr"),
        ("training.lr=inf", "training.lr"),
        ("training.temperature=nan", "training.temperature"),
        ("training.grad_clip=nan", "training.grad_clip"),
        ("erm=gpt4o erm.temperature=nan", "erm.temperature"),
        ("seed=-1", "seed"),
        ("seed=4294967296", "seed"),
        ("tracking.uri=mysql://u@h/db", "tracking.uri"),
        ("tracking.uri=ftp://h/x", "tracking.uri"),
        ("model.source=package:nope", "model.source"),
        ("dataset.queries=llm", "dataset.queries"),  # erm=none: a conflict between sections, before any data
        ("eval.view=erm", "eval.view"),
    ],
)
def test_bad_values_and_conflicts_are_config_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError) as raised:
        precheck(override.split())
    assert raised.value.key == key


def test_every_swept_value_is_checked():
    precheck(["-m", "training.lr=1e-4,2e-4"])
    with pytest.raises(ConfigError, match=r"training\.lr"):
        precheck(["-m", "training.lr=1e-4,nan"])


def test_secret_in_a_preset_and_in_env_set_is_refused(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    subprocess.run(["cp", "-r", str(REPO / "conf"), str(conf)], check=True)
    (conf / "experiment" / "leaky.yaml").write_text(
        f"# @package _global_\ntracking:\n  uri: http://apex:{PASSWORD}@127.0.0.1:5000\n", "utf-8"
    )
    (conf / "experiment" / "leaky_env.yaml").write_text(
        "# @package _global_\nhydra:\n  job:\n    env_set:\n      OPENAI_API_KEY: abcdefgh12345678\n", "utf-8"
    )
    with pytest.raises(ConfigError, match=r"tracking\.uri: holds a credential") as raised:
        precheck(["experiment=leaky"], conf=conf)
    assert PASSWORD not in str(raised.value)
    with pytest.raises(ConfigError, match=r"hydra\.job\.env_set\.OPENAI_API_KEY") as raised:
        precheck(["experiment=leaky_env"], conf=conf)
    assert "abcdefgh12345678" not in str(raised.value)
    # From the environment, the same URL is fine: only the interpolation is written.
    (conf / "experiment" / "env_url.yaml").write_text(
        "# @package _global_\ntracking:\n  uri: ${oc.env:APEX_TEST_URL}\n", "utf-8"
    )
    monkeypatch.setenv("APEX_TEST_URL", "sqlite:///experiments/mlflow.db")
    precheck(["experiment=env_url"], conf=conf)


def test_unknown_top_level_key_from_a_preset(tmp_path):
    conf = tmp_path / "conf"
    subprocess.run(["cp", "-r", str(REPO / "conf"), str(conf)], check=True)
    (conf / "experiment" / "typo.yaml").write_text("# @package _global_\ntrainig:\n  lr: 0.001\n", "utf-8")
    with pytest.raises(ConfigError, match="did you mean 'training'"):
        precheck(["experiment=typo"], conf=conf)


def test_help_and_other_configs_are_left_to_hydra():
    assert split_argv(["--help"])[2] is False and split_argv(["-cn", "other", "x=1"])[2] is False
    assert split_argv(["-m", "--cfg", "job", "seed=1"]) == (["seed=1"], True, True)


def test_compose_returns_the_job_config():
    cfg = compose(["training.lr=0.001"])
    assert cfg.training.lr == 0.001 and "hydra" in cfg


def _apex(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "apex.run", f"paths.experiments={tmp}", f"hydra.run.dir={tmp}/run", *args]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return done, time.perf_counter() - started


@pytest.mark.parametrize("override", ["trainig.lr=1e-3", "+trainig.lr=1e-3"])
def test_apex_run_typo_exits_2_in_seconds_and_writes_nothing(tmp_path, override):
    done, seconds = _apex(tmp_path, override)
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-2]
    assert line.startswith("python -m apex.run: error: command line: trainig.lr: unknown key")
    assert "did you mean 'training.lr'?" in line and "Traceback" not in done.stderr
    assert seconds < 30  # an upper bound on a shared machine; typically ~3 s, most of it imports
    assert not any(tmp_path.iterdir())  # no Hydra output folder, no database


@pytest.mark.slow  # the in-process probe above checks the same refusal
def test_apex_run_secret_in_a_preset_writes_no_hydra_folder(tmp_path):
    (REPO / "conf" / "experiment").joinpath("_leak_probe.yaml").write_text(
        f"# @package _global_\ntracking:\n  uri: http://apex:{PASSWORD}@127.0.0.1:9\n", "utf-8"
    )
    try:
        done, _ = _apex(tmp_path, "experiment=_leak_probe")
    finally:
        (REPO / "conf" / "experiment" / "_leak_probe.yaml").unlink()
    assert done.returncode == 2 and "tracking.uri: holds a credential" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert not any(tmp_path.iterdir())
