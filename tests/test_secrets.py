"""The one scrubber: URL userinfo, credential query parameters, key shapes, environment secrets; log records."""

from __future__ import annotations

import logging

import pytest

from apex.core.secrets import holds_secret, install_log_scrubber, reject_secrets_in_config, scrub, secret_in_overrides

CASES = {
    "http://user:password@host:8000/v1": "http://***@host:8000/v1",
    "postgresql://apex:hunter22@db.local/mlflow": "postgresql://***@db.local/mlflow",
    "https://h/v1?key=abc123&model=x": "https://h/v1?key=***&model=x",
    "https://h/v1?api_key=abc123": "https://h/v1?api_key=***",
    "https://h/x?sig=zz&token=tt": "https://h/x?sig=***&token=***",
    "header Bearer abcdefgh12345678": "header Bearer ***",
    "key sk-proj-0123456789abcdef here": "key *** here",
    "hf_abcdefghijklmnopqrstu": "***",
    "http://127.0.0.1:8000/v1 max_tokens=2048": "http://127.0.0.1:8000/v1 max_tokens=2048",
    "http://h/#/experiments/1/runs?viewStateShareKey=apex-rank-at-1&key=abc123": (
        "http://h/#/experiments/1/runs?viewStateShareKey=apex-rank-at-1&key=***"
    ),  # MLflow's saved-view name is not a credential; a key beside it still is
    "http://h/x?myviewStateShareKey=abc123": "http://h/x?myviewStateShareKey=***",
}


@pytest.mark.parametrize("text", list(CASES))
def test_scrub_known_answers(text: str) -> None:
    assert scrub(text, environ={}) == CASES[text]
    assert holds_secret(text, environ={}) == (CASES[text] != text)


def test_environment_secrets_are_scrubbed_longest_first() -> None:
    env = {"MY_TOKEN": "abcdef", "OPENAI_API_KEY": "xyzabcdefuvw", "HOME": "/home/u"}
    assert scrub("a xyzabcdefuvw b abcdef /home/u", env) == "a *** b *** /home/u"


def test_command_line_overrides_are_checked_by_value_and_by_name() -> None:
    assert secret_in_overrides(["erm=gpt4o", "erm.base_url=http://u:pw@h/v1"]) == "erm.base_url"
    assert secret_in_overrides(["+erm.api_key=sk-abcdefghijklmnop"]) == "erm.api_key"
    assert secret_in_overrides(["+erm.api_key=short"]) == "erm.api_key"
    assert secret_in_overrides(["erm.max_tokens=10", "erm.base_url='${oc.env:LLM_URL}'", "-m", "seed=0,1"]) is None


def test_literal_url_password_in_config_is_refused_but_an_env_interpolation_is_not() -> None:
    with pytest.raises(ValueError, match=r"erm\.base_url") as err:
        reject_secrets_in_config({}, literal={"erm.base_url": "http://u:pw123@h/v1"})
    assert "pw123" not in str(err.value)
    reject_secrets_in_config({"erm.base_url": "http://u:pw123@h/v1"}, literal={"erm.base_url": "${oc.env:X}"})


def test_log_records_of_any_logger_are_scrubbed(caplog) -> None:
    install_log_scrubber()
    # httpx's own level too: an earlier command's quiet_logs may have set it to WARNING in this process
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', "http://u:pw999@h/v1/chat")
        logging.getLogger("late.created.logger").warning("token=%s", "sk-abcdefghijklmnop")
    text = caplog.text
    assert "pw999" not in text and "sk-abcdefghijklmnop" not in text and "http://***@h/v1/chat" in text
