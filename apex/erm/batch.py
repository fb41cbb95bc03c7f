"""`erm.mode: batch`: the same requests through the OpenAI Batch API (half the price, answers within 24 h).

Round r (r = 0 .. max_reasks): write one JSONL line per pending document (`custom_id` = cache key, body = the same
chat-completions request as online mode, with re-ask feedback from round r-1), upload it (`files.create`, purpose
`batch`), `batches.create`, poll `batches.retrieve` every `batch_poll_s`, download the output (and error) file and
judge each answer exactly as online mode does. Valid answers go to the cache at once; invalid or missing ones go to
the next round; after the last round those the model answered (invalid answers, refusals, 4xx) are recorded as
failed, and those it never answered (5xx / 429 lines, lines missing from an expired or failed batch) stay pending.

Resume: every submitted batch id is stored (with its keys) before polling starts. A re-run first polls the open
batches of the same scope and ingests their answers, so a run killed while waiting never submits (or pays for) the
same documents twice. A run that waits longer than `batch_max_wait_s` stops with `ErmBackendError`; re-running
resumes the wait.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import openai
from openai.types import Batch

from apex.core.secrets import scrub
from apex.erm.cache import ErmCache, Outcome, Scope
from apex.erm.client import ErmBackendError
from apex.erm.config import ErmConfig
from apex.erm.llm import Counters, Pending, judge_answer, policy_of, request_body
from apex.erm.prompts import Task
from apex.erm.retry import RequestFailed, call_with_retries

log = logging.getLogger("apex.erm")
T = TypeVar("T")

ENDPOINT = "/v1/chat/completions"
MAX_LINES = 50_000  # the Batch API's limit on requests per batch
MAX_BYTES = 190 * 2**20  # below the 200 MB limit on a batch input file
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass
class _Tally:
    """Tokens and the last failure reason of one document across rounds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    model: str = ""
    fingerprint: str = ""
    reason: str = ""
    judged: bool = False  # the model (or the server, with a 4xx) gave a verdict on this request


def _chunks(lines: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    out: list[list[tuple[str, bytes]]] = [[]]
    size = 0
    for key, line in lines:
        if out[-1] and (len(out[-1]) >= MAX_LINES or size + len(line) > MAX_BYTES):
            out.append([])
            size = 0
        out[-1].append((key, line))
        size += len(line)
    return [c for c in out if c]


def _api(fn: Callable[[], T], cfg: ErmConfig, what: str) -> T:
    """One Batch/Files API call with the usual retries; a call that fails for good stops the run (re-run resumes)."""
    try:
        return call_with_retries(fn, policy_of(cfg), "0")[0]
    except RequestFailed as exc:
        raise ErmBackendError(f"Batch API: {what} failed: {exc.reason}; re-run to resume") from exc


def _submit(client: openai.OpenAI, cfg: ErmConfig, lines: list[tuple[str, bytes]]) -> str:
    data = b"".join(line for _, line in lines)
    file_obj = _api(lambda: client.files.create(file=("erm-batch.jsonl", data), purpose="batch"), cfg, "upload")
    batch = _api(
        lambda: client.batches.create(input_file_id=file_obj.id, endpoint=ENDPOINT, completion_window="24h"),
        cfg,
        "create batch",
    )
    return batch.id


def _wait(client: openai.OpenAI, cfg: ErmConfig, batch_id: str, started: float) -> Batch:
    while True:
        batch = _api(lambda: client.batches.retrieve(batch_id), cfg, f"retrieve {batch_id}")
        if batch.status not in _RUNNING:
            return batch
        if time.monotonic() - started > cfg.batch_max_wait_s:
            raise ErmBackendError(
                f"batch {batch_id} still {batch.status} after {cfg.batch_max_wait_s:g} s; re-run to resume waiting"
            )
        log.info("erm batch %s: %s %s", batch_id, batch.status, batch.request_counts or "")
        time.sleep(cfg.batch_poll_s)


def _download(client: openai.OpenAI, cfg: ErmConfig, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    content = _api(lambda: client.files.content(file_id), cfg, f"download {file_id}")
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]


def _ingest(
    task: Task,
    records: list[dict],
    wanted: dict[str, Pending],
    tallies: dict[str, _Tally],
    cache: ErmCache,
    scope: Scope,
) -> set[str]:
    """Judge each output line of a batch; store valid answers; return the keys answered validly."""
    answered: set[str] = set()
    for rec in records:
        key = rec.get("custom_id")
        if key not in wanted or key in answered:
            continue
        tally = tallies.setdefault(key, _Tally())
        tally.requests += 1
        response = rec.get("response") or {}
        body = response.get("body") or {}
        if rec.get("error") or response.get("status_code") != 200:
            err = rec.get("error") or body.get("error") or {}
            status = response.get("status_code")
            tally.reason = scrub(f"HTTP {status}: {err.get('message', err) if err else 'error'}")
            tally.judged = isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)
            continue
        tally.judged = True
        usage = body.get("usage") or {}
        tally.prompt_tokens += usage.get("prompt_tokens") or 0
        tally.completion_tokens += usage.get("completion_tokens") or 0
        tally.model = body.get("model") or tally.model
        tally.fingerprint = body.get("system_fingerprint") or tally.fingerprint
        choices = body.get("choices") or []
        payload, reason = judge_answer(task, choices[0]) if choices else (None, "answer without choices")
        if payload is None:
            tally.reason = reason
            continue
        item = wanted[key]
        outcome = Outcome(
            key, item.text_sha256, True, payload, "", tally.requests, tally.prompt_tokens, tally.completion_tokens,
            tally.model, tally.fingerprint,
        )  # fmt: skip
        cache.put(scope, [outcome])
        answered.add(key)
    return answered


def _collect(
    client: openai.OpenAI, task: Task, cfg: ErmConfig, batch_ids: Sequence[str], wanted: dict[str, Pending],
    tallies: dict[str, _Tally], cache: ErmCache, scope: Scope,
) -> set[str]:  # fmt: skip
    started = time.monotonic()
    answered: set[str] = set()
    for batch_id in batch_ids:
        batch = _wait(client, cfg, batch_id, started)
        records = _download(client, cfg, batch.output_file_id) + _download(client, cfg, batch.error_file_id)
        answered |= _ingest(task, records, wanted, tallies, cache, scope)
        if batch.status != "completed":
            log.warning("erm batch %s ended with status %s", batch_id, batch.status)
        cache.close_batch(batch_id, batch.status)
    return answered


def run_batch(
    client: openai.OpenAI, task: Task, items: Sequence[Pending], cfg: ErmConfig, cache: ErmCache, scope: Scope,
    *, progress: bool = True,
) -> Counters:  # fmt: skip
    """Answer `items` through the Batch API (see the module docstring); outcomes go straight to `cache`."""
    wanted = {p.key: p for p in items}
    tallies: dict[str, _Tally] = {}
    counters = Counters()
    done: set[str] = set()
    open_ids = [batch_id for batch_id, _ in cache.open_batches(scope)]
    if open_ids:
        log.info("erm batch: resuming %d open batches", len(open_ids))
        done |= _collect(client, task, cfg, open_ids, wanted, tallies, cache, scope)
    for round_ in range(cfg.max_reasks + 1):
        todo = [p for p in items if p.key not in done]
        if not todo:
            break
        lines = []
        for p in todo:
            feedback = tallies[p.key].reason if p.key in tallies and tallies[p.key].reason else None
            body = request_body(task, cfg, p.text, feedback)
            line = {"custom_id": p.key, "method": "POST", "url": ENDPOINT, "body": body}
            lines.append((p.key, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")))
        batch_ids = []
        for chunk in _chunks(lines):
            batch_id = _submit(client, cfg, chunk)
            cache.add_batch(scope, batch_id, [k for k, _ in chunk])
            batch_ids.append(batch_id)
        counters.requests_sent += len(todo)
        counters.reasks += len(todo) if round_ else 0
        log.info("erm batch round %d: %d requests in %d batches %s", round_, len(todo), len(batch_ids), batch_ids)
        done |= _collect(client, task, cfg, batch_ids, wanted, tallies, cache, scope)
    failed = []
    for p in items:
        if p.key in done or not tallies.get(p.key, _Tally()).judged:
            continue  # answered, or never answered by the model: pending, the runner reports it
        t = tallies[p.key]
        reason = f"{t.reason or 'no answer'} (batch mode, {t.requests} answers)"
        failed.append(
            Outcome(p.key, p.text_sha256, False, "", reason, t.requests, t.prompt_tokens, t.completion_tokens,
                    t.model, t.fingerprint)
        )  # fmt: skip
    cache.put(scope, failed)
    return counters
