"""params.yaml is generated from conf/: the committed file matches, and the check fails when they disagree."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from apex.core import params_file
from apex.core.configs import load_configs

REPO = Path(__file__).resolve().parents[1]


def test_committed_params_yaml_matches_conf(capsys) -> None:
    assert params_file.main(["--check", "--params", str(REPO / "params.yaml")]) == 0, capsys.readouterr().err


def test_check_fails_when_conf_and_params_disagree(tmp_path: Path, monkeypatch, capsys) -> None:
    params = tmp_path / "params.yaml"
    assert params_file.main(["--params", str(params), "arm=apex", "sampler.n_hard=3"]) == 0
    written = yaml.safe_load(params.read_text())
    assert written["overrides"] == ["arm=apex", "sampler.n_hard=3"] and written["sampler"]["n_hard"] == 3
    assert load_configs(written).sampler.n_hard == 3  # what the DVC stages read is a valid run config
    assert params_file.main(["--check", "--params", str(params)]) == 0

    params.write_text(params.read_text().replace("n_soft: 2", "n_soft: 1"))  # edited by hand
    assert params_file.main(["--check", "--params", str(params)]) == 1
    assert "n_soft" in capsys.readouterr().err

    assert params_file.main(["--params", str(params)]) == 0  # regenerated with the overrides it records
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    sampler = conf / "sampler" / "model_aware.yaml"
    sampler.write_text(sampler.read_text() + "n_soft: 5\n")  # conf/ changes, params.yaml does not
    monkeypatch.setattr(params_file, "CONF", conf)
    assert params_file.main(["--check", "--params", str(params)]) == 1
    assert "+  n_soft: 5" in capsys.readouterr().err


def test_no_credential_is_written_into_params_yaml(tmp_path: Path) -> None:
    import pytest

    from apex.core.errors import InputError

    params = tmp_path / "params.yaml"
    url = "erm.base_url=http://apexuser:pa55-Word-9f3e1c@127.0.0.1:9/v1"
    with pytest.raises(InputError, match="credential"):
        params_file.main(["--params", str(params), "erm=openai_compatible", url])
    assert not params.exists()
