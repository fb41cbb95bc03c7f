"""Retries of one HTTP request: exponential backoff with jitter, Retry-After honoured, every request counted.

Retried: HTTP 429 (rate limit), 408/409, 5xx, timeouts, connection errors, and a 200 whose body is not a chat
completion (an HTML page from a proxy, truncated JSON). These are *transport* failures: the model never answered, so
when the retries run out the document stays pending (`RequestFailed.transport`), never permanently failed.
Attempt n (0-based) of a retryable failure waits

    delay_n = Retry-After                                   if the server sent one (429/503 usually do)
    delay_n = c_n * (1 + u) / 2,  c_n = min(max_s, base_s * 2**n),  u ~ U[0, 1)    otherwise

("equal jitter": between half and all of the exponential cap, so concurrent workers that failed together spread
out instead of retrying in lock step). u comes from a generator seeded by (seed, document key, attempt): runs are
reproducible and no global random state is touched. 401/403 abort the whole run (`ErmBackendError`); any other 4xx
fails this document at once, since repeating the same request cannot help (a permanent failure: the server judged
the request). A set `stop` event ends the backoff at once (the stage is stopping: the server is down).
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import openai

from apex.core.secrets import scrub
from apex.erm.client import ErmBackendError

T = TypeVar("T")
_MAX_RETRY_AFTER_S = 600.0  # a sanity cap on what a server may ask us to wait


class RequestFailed(Exception):
    """A request that failed for good; `n_requests` counts every HTTP request sent for it.

    `transport` is True when the server never judged the request (unreachable, 5xx, timeouts, non-JSON 200s).
    """

    def __init__(self, reason: str, n_requests: int, transport: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.n_requests = n_requests
        self.transport = transport


class NotAnAnswer(Exception):
    """HTTP 200 whose body is not what the endpoint returns (an HTML error page, text): retried like a 5xx."""


# Stored failure reasons written for transport failures (by this module, before they became "pending"): a cache
# written by an older version holds such rows; they are re-sent, never kept as failed.
_TRANSPORT_REASON = re.compile(r"^(HTTP (429|408|409|5\d\d) after|timeout after|connection error|non-JSON answer)")


def is_transport_reason(reason: str) -> bool:
    return bool(_TRANSPORT_REASON.match(reason))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_s: float
    max_s: float
    seed: int

    def delay(self, attempt: int, key: str, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt + 1` (see the module docstring)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), _MAX_RETRY_AFTER_S)
        cap = min(self.max_s, self.base_s * 2.0**attempt)
        rng = np.random.default_rng([self.seed, int(key[:12], 16) if _is_hex(key[:12]) else 0, attempt])
        return cap * (1.0 + rng.random()) / 2.0


def _is_hex(s: str) -> bool:
    return bool(s) and all(c in "0123456789abcdef" for c in s.lower())


def retry_after_seconds(headers: object) -> float | None:
    """Retry-After (seconds or HTTP date) or OpenAI's retry-after-ms, or None."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    ms = get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(parsed.timestamp() - time.time(), 0.0)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    key: str,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> tuple[T, int, int]:
    """Call `fn` until it succeeds; returns (result, requests sent, retries). Raises `RequestFailed`."""
    sent = 0
    reason = "not sent"
    for attempt in range(policy.max_retries + 1):
        sent += 1
        retry_after: float | None = None
        try:
            return fn(), sent, attempt
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ErmBackendError(
                f"the server rejected the API key (HTTP {exc.status_code}); stopping the run"
            ) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status != 429 and status not in (408, 409) and status < 500:
                body = exc.body if isinstance(exc.body, dict) else {}
                detail = body.get("message") or _short(exc)
                raise RequestFailed(scrub(f"HTTP {status}: {_short(detail)}"), sent) from exc
            retry_after = retry_after_seconds(exc.response.headers)
            reason = f"HTTP {status}"
        except openai.APITimeoutError:
            reason = "timeout"
        except openai.APIConnectionError as exc:
            reason = scrub(f"connection error: {_short(exc)}")
        except (NotAnAnswer, json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            reason = scrub(f"non-JSON answer (HTTP 200): {_short(exc, 120)}")
        if attempt < policy.max_retries:
            if stop is None:
                sleep(policy.delay(attempt, key, retry_after))
            elif stop.wait(policy.delay(attempt, key, retry_after)):
                break
        if stop is not None and stop.is_set():
            break
    raise RequestFailed(f"{reason} after {sent} requests", sent, transport=True)


def _short(what: object, limit: int = 200) -> str:
    text = " ".join(str(what).split())
    return text if len(text) <= limit else text[:limit] + "..."
