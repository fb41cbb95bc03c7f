"""`python -m apex.run --help`: apex's own help (conf/hydra/help/apex.yaml) with examples, listing every option of
every config group in conf/ (and the launchers Hydra finds) and never a schema's `base`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def listed_groups(text: str) -> dict[str, list[str]]:
    block = text.split("Config groups", 1)[1].split("\n\n", 1)[0]
    groups = {}
    for line in block.splitlines()[1:]:
        match = re.match(r"\s+(\S+)\s+(.+)$", line)
        if match:
            groups[match[1]] = [o.strip() for o in match[2].split(",")]
    return groups


def test_help_lists_every_group_option_of_conf_and_no_base() -> None:
    template = yaml.safe_load((CONF / "hydra" / "help" / "apex.yaml").read_text())["template"]
    groups = listed_groups(template)
    on_disk = {
        d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in CONF.iterdir() if d.is_dir() and d.name != "hydra"
    }
    assert sorted(groups) == sorted([*on_disk, "hydra/launcher"])
    for group, options in on_disk.items():
        assert sorted(o for o in groups[group] if o != "(none)") == options, group
    assert "base" not in {o for options in groups.values() for o in options}
    launchers = {p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml")} | {"basic", "joblib"}
    assert set(groups["hydra/launcher"]) == launchers
    defaults = (CONF / "config.yaml").read_text()
    for group, options in groups.items():  # the default is listed first
        found = re.search(rf"^\s+- {re.escape(group)}: (\w+)", defaults, re.M)
        if found and found[1] != "null":
            assert options[0] == found[1], group


def test_help_prints_apex_s_text_with_examples() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "apex.run", "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.startswith("apex: does the APEX-Embedding recipe") and "Examples:" in out
    assert "python -m apex.run -m experiment=smoke_sweep" in out and "== Config groups ==" not in out  # not Hydra's
    assert not re.search(r"\bbase\b", out)
