"""Online LLM requests: one document → one validated answer, with re-asks, and many documents in flight at once.

Per document: send the prompt (temperature, seed, `response_format` from the config); transport failures are retried
by `apex.erm.retry`, and a document whose retries run out on a transport failure is *unanswered* (pending: not
stored, sent again by the next run), never failed. An answer that was cut off (`finish_reason == "length"`), is
not JSON, or breaks the schema is re-asked up to `max_reasks` times with a note of what was wrong; after that the
document is recorded as failed with the last reason. Token usage, the model name the server reports and its
`system_fingerprint` are kept per document.

Concurrency: `cfg.concurrency` worker threads each run one document at a time; the calling thread alone writes
outcomes (to the cache) as they finish, in completion order, so a kill loses only the requests in flight.

Outage: when `cfg.concurrency` documents in a row (in completion order, none answered in between) end unanswered,
the server is taken to be down: no further document is started, backoffs in flight end at once, and the caller
reports what is done, pending and failed (`apex.erm.runner`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import openai
from openai.types.chat import ChatCompletion

from apex.core.progress import progress_bar
from apex.core.secrets import scrub
from apex.erm.cache import Outcome
from apex.erm.compat import Negotiator
from apex.erm.config import ErmConfig
from apex.erm.prompts import Task
from apex.erm.retry import NotAnAnswer, RequestFailed, RetryPolicy, call_with_retries
from apex.erm.schema import MapValidationError

log = logging.getLogger("apex.erm")


@dataclass(frozen=True)
class Pending:
    """A document still to be answered: its cache key, text hash and text."""

    key: str
    text_sha256: str
    text: str


@dataclass(frozen=True)
class Unanswered:
    """A document the model never answered (transport failures only): it stays pending."""

    key: str
    reason: str


@dataclass
class Counters:
    requests_sent: int = 0
    retries: int = 0
    reasks: int = 0
    unanswered: int = 0
    last_transport_error: str = ""  # scrubbed; for the one-line message when the stage stops
    outage: bool = False  # the stage stopped early: the server looked down


def _chat_completion(
    client: openai.OpenAI, body: dict, negotiator: Negotiator | None = None, task: Task | None = None
) -> ChatCompletion:
    """One chat request; a 200 whose body is not a chat completion (an HTML proxy page) raises `NotAnAnswer`.

    With a `negotiator`, the body is adapted to what the server accepts, and a 400/422 that names a field we can
    drop or weaken is sent again at once without it (apex.erm.compat).
    """
    while True:
        sent = body if negotiator is None or task is None else negotiator.adapt(body, task.schema_name,
                                                                                   task.json_schema)  # fmt: skip
        try:
            resp = client.chat.completions.create(**sent)
            break
        except openai.APIStatusError as exc:
            if negotiator is None or not negotiator.step_down(exc, sent):
                raise
    if not isinstance(resp, ChatCompletion):
        raise NotAnAnswer(f"{type(resp).__name__} body: {str(resp)[:80]!r}")
    return resp


def policy_of(cfg: ErmConfig) -> RetryPolicy:
    return RetryPolicy(cfg.max_retries, cfg.backoff_base_s, cfg.backoff_max_s, cfg.seed)


def request_body(task: Task, cfg: ErmConfig, text: str, feedback: str | None = None) -> dict:
    """The chat-completions request for one document (also the body of a Batch API line)."""
    body = {
        "model": cfg.resolved_model,
        "messages": task.messages(text, feedback),
        "temperature": cfg.temperature,
        "seed": cfg.seed,
        "max_tokens": cfg.max_tokens,
    }
    fmt = task.response_format(cfg.structured_output)
    if fmt is not None:  # structured_output: none sends no response_format at all
        body["response_format"] = fmt
    return body


def judge_answer(task: Task, choice: object) -> tuple[str | None, str]:
    """(payload, "") for a valid answer, else (None, reason). `choice` is one chat-completion choice (or dict)."""
    get = choice.get if isinstance(choice, dict) else lambda k: getattr(choice, k, None)
    message = get("message")
    mget = message.get if isinstance(message, dict) else lambda k: getattr(message, k, None)
    finish = get("finish_reason")
    if finish == "length":
        return None, "truncated answer (finish_reason=length)"
    if message is None:
        return None, "answer without a message"
    refusal = mget("refusal")
    if refusal:
        return None, f"refusal: {' '.join(str(refusal).split())[:200]}"
    try:
        return task.parse(mget("content")), ""
    except MapValidationError as exc:
        return None, str(exc)


def complete_one(
    client: openai.OpenAI,
    task: Task,
    item: Pending,
    cfg: ErmConfig,
    stop: threading.Event | None = None,
    negotiator: Negotiator | None = None,
) -> tuple[Outcome | Unanswered, Counters]:
    """Answer one document (see the module docstring); never raises for a per-document problem."""
    counters = Counters()
    prompt_tokens = completion_tokens = 0
    model_name = fingerprint = ""
    feedback: str | None = None
    reason = ""
    for ask in range(cfg.max_reasks + 1):
        counters.reasks = ask
        body = request_body(task, cfg, item.text, feedback)
        try:
            resp, sent, retries = call_with_retries(
                lambda body=body: _chat_completion(client, body, negotiator, task), policy_of(cfg), item.key, stop=stop
            )
        except RequestFailed as exc:
            counters.requests_sent += exc.n_requests
            counters.retries += max(exc.n_requests - 1, 0)
            if exc.transport:  # the model never answered (this time): pending, not failed
                return Unanswered(item.key, exc.reason), counters
            reason = exc.reason
            break
        counters.requests_sent += sent
        counters.retries += retries
        if resp.usage is not None:
            prompt_tokens += resp.usage.prompt_tokens or 0
            completion_tokens += resp.usage.completion_tokens or 0
        model_name = resp.model or model_name
        fingerprint = resp.system_fingerprint or fingerprint
        if not resp.choices:
            payload, reason = None, "answer without choices"
        else:
            payload, reason = judge_answer(task, resp.choices[0])
        if payload is not None:
            return Outcome(
                item.key, item.text_sha256, True, payload, "", counters.requests_sent, prompt_tokens,
                completion_tokens, model_name, fingerprint,
            ), counters  # fmt: skip
        feedback = reason
        if ask == cfg.max_reasks:
            reason = f"{reason} (after {ask + 1} answers)"
    return Outcome(
        item.key, item.text_sha256, False, "", scrub(reason), counters.requests_sent, prompt_tokens,
        completion_tokens, model_name, fingerprint,
    ), counters  # fmt: skip


def run_online(
    client: openai.OpenAI,
    task: Task,
    items: Sequence[Pending],
    cfg: ErmConfig,
    on_outcomes: Callable[[list[Outcome]], None],
    *,
    progress: bool = True,
) -> Counters:
    """Answer `items` with `cfg.concurrency` requests in flight; `on_outcomes` runs in this thread.

    It gets the documents that finished since the last call (often one, a few when several finish together), so
    one cache transaction covers them: the fsync per commit stays off the path of the requests.

    At most `2 * concurrency` documents are submitted ahead, so an interrupted run has little queued work and memory
    stays flat for any corpus size. A backend error (rejected key) cancels the rest and propagates. Unanswered
    documents are not passed to `on_outcomes`; an outage (module docstring) stops starting new ones.
    """
    total = Counters()
    stop = threading.Event()
    in_a_row = 0  # documents unanswered since the last answer
    queue = iter(items)
    bar = progress_bar(total=len(items), desc=f"erm {task.kind} ({cfg.name})", enabled=progress, unit="doc")
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="erm")
    in_flight: set[Future] = set()
    negotiator = Negotiator(cfg.structured_output, cfg.base_url or "the OpenAI API")

    def refill() -> None:
        while len(in_flight) < 2 * cfg.concurrency and not stop.is_set():
            item = next(queue, None)
            if item is None:
                return
            in_flight.add(pool.submit(complete_one, client, task, item, cfg, stop, negotiator))

    clean_exit = False
    try:
        refill()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            finished: list[Outcome] = []
            error: BaseException | None = None
            for fut in done:
                in_flight.discard(fut)
                try:
                    outcome, counters = fut.result()
                except BaseException as exc:  # a backend error: store what finished beside it, then stop
                    error = error or exc
                    continue
                total.requests_sent += counters.requests_sent
                total.retries += counters.retries
                total.reasks += counters.reasks
                if isinstance(outcome, Unanswered):
                    total.unanswered += 1
                    total.last_transport_error = outcome.reason
                    in_a_row += 1
                    if in_a_row >= min(cfg.concurrency, len(items)) and not stop.is_set():
                        log.warning("erm %s: %d documents in a row unanswered (%s); stopping", task.kind, in_a_row,
                                    outcome.reason)  # fmt: skip
                        total.outage = True
                        stop.set()
                    continue
                in_a_row = 0
                if not outcome.ok:
                    log.warning("erm %s: document %s failed: %s", task.kind, outcome.text_sha256[:12], outcome.reason)
                finished.append(outcome)
            if error is None:
                refill()  # before the commit: keep the workers fed while this thread waits on the disk
            on_outcomes(finished)
            bar.update(len(finished))
            if error is not None:
                raise error
        clean_exit = True
    finally:
        total.requests_sent += negotiator.rejections  # refused for a field, then sent again without it
        # On an error, drop queued documents and do not wait for requests in flight (they may be backing off).
        if not clean_exit:
            stop.set()
        pool.shutdown(wait=clean_exit, cancel_futures=True)
        bar.close()
    return total
