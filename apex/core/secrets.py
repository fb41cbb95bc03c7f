"""Keep secrets out of MLflow, logs, caches, Hydra's output folder and the terminal: the one scrubber.

Secrets live only in the environment. `scrub` is applied before any text is logged, cached, used as a param, tag or
run name, or printed. It replaces by ``***``

- every value of an environment variable whose name marks it as a secret (``*KEY*``, ``*TOKEN*``, ``*PASSWORD*``...),
- the userinfo of a URL (``http://user:password@host/`` → ``http://***@host/``),
- the value of a credential-named URL query parameter (``?key=…``, ``&api_key=…``, ``token=``, ``sig=``...),
- anything shaped like an API key (``sk-…``, ``hf_…``, ``ghp_…``, ``AKIA…``, ``Bearer …``).

`install_log_scrubber` routes every log record of every logger (httpx, openai and urllib3 included) through `scrub`.
Config values that hold a literal secret are refused (`reject_secrets_in_config`); command-line overrides are checked
before Hydra writes anything (`apex.core.cli`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from apex.core.errors import ConfigError

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
KEY_SHAPE = re.compile(
    r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/\-]{8,}=*"
)
# scheme://user[:password]@host — the userinfo part, whatever the scheme (http, postgresql, mysql, ...).
URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@?#'\"]+)@")
# ?key=... / &api_key=... / &token=...: credentials in a query string. One exception: MLflow's UI names a saved
# view of an experiment page `viewStateShareKey` (a view name, not a credential; apex links to its own view).
QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?!viewStateShareKey=)(?:[A-Za-z0-9_.\-]*(?:key|token|secret|password|passwd|sig|signature|auth|credential)"
    r"[A-Za-z0-9_.\-]*))=(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)
# Config keys that can only hold a credential ('max_tokens' is not one).
CREDENTIAL_NAME = re.compile(
    r"api_?key|secret|passw|credential|bearer|auth_token|access_token|^token$|_token$", re.IGNORECASE
)
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
MASK = "***"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first, so a secret containing another is fully hidden


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret of the module docstring replaced by ``***``."""
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    text = URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = QUERY_SECRET.sub(lambda m: f"{m['name']}={MASK}", text)
    return KEY_SHAPE.sub(MASK, text)


def scrub_mapping(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {k: scrub(v, environ) if isinstance(v, str) else v for k, v in values.items()}


def holds_secret(value: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when `scrub` would change `value`: it holds a key, a URL password or an environment secret."""
    return scrub(value, environ) != value


def secret_in_overrides(overrides: Iterable[str]) -> str | None:
    """The key of the first command-line override whose value holds a secret (or whose key names one), else None.

    Interpolations such as ``erm.base_url='${oc.env:LLM_URL}'`` are fine: only their name is written anywhere.
    """
    for override in overrides:
        if "=" not in override or override.startswith("-"):
            continue
        key, value = override.split("=", 1)
        key = key.lstrip("+~")
        if holds_secret(value) or (CREDENTIAL_NAME.search(key.rsplit(".", 1)[-1]) and value.strip("'\" ")):
            return key
    return None


def reject_secrets_in_config(flat: Mapping[str, Any], literal: Mapping[str, Any] | None = None) -> None:
    """A key pasted into a config would be logged as a param: refuse it and say where it is (never what it is).

    `flat` is the resolved config; `literal` (optional) the unresolved one: a URL with a password is fine when it
    comes from the environment (``${oc.env:...}``) but refused when written into a config file or an override.
    """
    for name, value in flat.items():
        if isinstance(value, str) and (KEY_SHAPE.search(value) or value in secret_values()):
            raise ConfigError(
                name,
                "looks like a secret; put API keys in the environment (OPENAI_API_KEY), never in config files or "
                "overrides",
            )
    for name, value in (literal or {}).items():
        if isinstance(value, str) and "${" not in value and holds_secret(value):
            raise ConfigError(
                name,
                f"holds a credential (a URL password or a key= parameter); it would be written to Hydra's output "
                f"folder. Put the URL in an environment variable and use {name}='${{oc.env:VARIABLE}}'",
            )


def check_env_set(env_set: Mapping[str, Any]) -> None:
    """`hydra.job.env_set` follows the rule of every other key: a literal credential is refused (Hydra would write
    it to .hydra/hydra.yaml); an interpolation such as ``${oc.env:OPENAI_API_KEY}`` names it without holding it."""
    for name, value in (env_set or {}).items():
        text = "" if value is None else str(value)
        if "${" in text or not text.strip():
            continue
        if SECRET_NAME.search(str(name)) or holds_secret(text):
            raise ConfigError(
                f"hydra.job.env_set.{name}",
                "holds a literal credential (it would be written to .hydra/hydra.yaml); export it in the shell "
                "that starts the run instead",
            )


class _ScrubbingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _ScrubbingFilter()
_factory_installed = False


def install_log_scrubber() -> None:
    """Scrub every log record, from any logger, before any handler sees it (idempotent).

    A record factory catches records of loggers created later and of handlers added later (Hydra configures its
    handlers after we start); the filter on existing root handlers covers records made before installation.
    """
    global _factory_installed
    if not _factory_installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _FILTER.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
