"""The OpenAI client for the LLM backends: API key from the environment, base URL, and a pre-flight check.

A run fails at once, before any document request, when it cannot possibly work: `gpt4o` (or a remote server) without
`OPENAI_API_KEY`, a server that does not answer, or a key the server rejects. A local server (vLLM, Ollama,
llama.cpp on localhost or a private address) gets a placeholder key when none is set: those servers ignore it.

The key never leaves this module except inside the client; `apex.core.secrets.scrub` removes it (an
environment secret) from any text we store or log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from urllib.parse import urlparse

import openai

from apex.core.errors import ServiceError
from apex.core.secrets import scrub
from apex.erm.config import API_KEY_ENV, ErmConfig

log = logging.getLogger("apex.erm")

LOCAL_PLACEHOLDER_KEY = "sk-local-no-key"
_DEFAULT_HOST = "the default OpenAI endpoint"


class ErmBackendError(ServiceError):
    """The LLM backend cannot serve this run at all (no key, server down, key rejected)."""


class ErmPendingError(ErmBackendError):
    """The stage stopped with documents still pending (the server stopped answering); re-running resumes."""

    def __init__(self, message: str, *, done: int, pending: int, failed: int) -> None:
        super().__init__(message)
        self.done, self.pending, self.failed = done, pending, failed


def is_local_url(base_url: str | None) -> bool:
    """True for loopback, private-network and `.local` hosts: where self-hosted servers need no real key."""
    if not base_url:
        return False
    host = urlparse(base_url).hostname or ""
    if host in ("localhost", "0.0.0.0") or host.endswith(".local"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private


def _api_key(cfg: ErmConfig) -> str:
    key = os.environ.get(API_KEY_ENV, "")
    if key:
        return key
    if cfg.name != "gpt4o" and is_local_url(cfg.base_url):  # openai_compatible, local_llm
        log.info(
            "erm=%s: %s is not set; using a placeholder key for local server %s",
            cfg.name,
            API_KEY_ENV,
            scrub(cfg.base_url or ""),
        )
        return LOCAL_PLACEHOLDER_KEY
    where = scrub(cfg.base_url) if cfg.base_url else _DEFAULT_HOST
    raise ErmBackendError(
        f"erm={cfg.name} needs an API key for {where}: set the environment variable {API_KEY_ENV} "
        f"(keys are never read from the config)"
    )


def make_client(cfg: ErmConfig) -> openai.OpenAI:
    """A client with the library's own retries off (`apex.erm.retry` counts and paces every request itself)."""
    return openai.OpenAI(api_key=_api_key(cfg), base_url=cfg.base_url or None, timeout=cfg.timeout_s, max_retries=0)


def preflight(client: openai.OpenAI, cfg: ErmConfig) -> None:
    """One cheap request (`GET /models`) to prove the server answers and accepts the key; raises `ErmBackendError`.

    A server that answers with any HTTP status other than 401/403 is alive (llama.cpp and some proxies have no
    `/models`), so only connection failures, timeouts and rejected keys stop the run.
    """
    where = scrub(cfg.base_url) if cfg.base_url else _DEFAULT_HOST
    try:
        client.with_options(timeout=max(cfg.preflight_timeout_s, 0.1), max_retries=0).models.list()
    except openai.AuthenticationError as exc:
        raise ErmBackendError(f"erm={cfg.name}: {where} rejected the API key from {API_KEY_ENV} (HTTP 401)") from exc
    except openai.PermissionDeniedError as exc:
        raise ErmBackendError(f"erm={cfg.name}: {where} denied access for this API key (HTTP 403)") from exc
    except openai.APIConnectionError as exc:  # includes APITimeoutError
        raise ErmBackendError(
            f"erm={cfg.name}: the server at {where} did not answer within {cfg.preflight_timeout_s:g} s "
            f"({type(exc).__name__}); is it running, and is erm.base_url right?"
        ) from exc
    except openai.APIStatusError as exc:
        log.info(
            "erm pre-flight: %s answered GET /models with HTTP %d; treating the server as up", where, exc.status_code
        )
