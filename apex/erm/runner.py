"""Answer a list of texts with one task, through the cache: look up, send only what is missing, store as it goes.

Shared by `build_maps` (task `map`, any backend) and `generate_queries` (task `query`, LLM backends). Order of work:

1. key every text (`Scope.key`), drop duplicate texts (one answer serves every id with that text);
2. read stored answers and stored failures; a failure is re-sent only with `retry_failed` (a stored transport
   failure, written by older versions, is always re-sent: the model never answered it);
3. if anything is missing: for an LLM, build the client and run the pre-flight check (so a missing key or a dead
   server fails at once, before any document request), then answer online or through the Batch API; for spaCy,
   load the model and extract in `nlp.pipe` batches; every finished answer is committed to the cache at once;
4. read every outcome back from the cache (the single source of truth, whether answered now or in an earlier run);
5. if any text is still unanswered (the server stopped answering: connection errors, 5xx, timeouts), stop with
   `ErmPendingError`: one line with the done / pending / failed counts and how to resume. A run never goes on with
   a view degraded by transport failures; re-running sends exactly the pending texts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from apex.core.secrets import scrub
from apex.erm.cache import ErmCache, Outcome, Scope, text_sha256
from apex.erm.client import ErmPendingError
from apex.erm.config import ErmConfig
from apex.erm.llm import Counters, Pending
from apex.erm.prompts import Task
from apex.erm.registry import backend_of
from apex.erm.retry import is_transport_reason

log = logging.getLogger("apex.erm")
# Counters that only an LLM backend fills (requests, tokens, cost): left out for spaCy instead of logged as 0.
LLM_ONLY_STATS = frozenset(
    {"requests_sent", "retries", "reasks", "prompt_tokens", "completion_tokens", "est_cost_usd",
     "total_prompt_tokens", "total_completion_tokens", "total_est_cost_usd"}
)  # fmt: skip


@dataclass
class Answers:
    """Outcome per unique key, the key of every input text (same order), and what this run cost."""

    keys: list[str]
    outcomes: dict[str, Outcome]
    fresh: set[str] = field(default_factory=set)  # keys answered (or failed) by this run, not read from cache
    stats: dict[str, float] = field(default_factory=dict)


def scope_of(task: Task, cfg: ErmConfig) -> Scope:
    """The answer cache's namespace for `task` under the backend `cfg.name` (its record's `scope`)."""
    backend = backend_of(cfg)
    if backend.scope is None:
        raise ValueError(f"erm={cfg.name} answers nothing: it has no answer cache")
    return backend.scope(task, cfg)


def _pending_error(
    task: Task, cfg: ErmConfig, unique: list[str], outcomes: dict[str, Outcome], counters: Counters
) -> ErmPendingError:
    """One line: where, why, done / pending / failed, how to resume."""
    done = sum(1 for o in outcomes.values() if o.ok)
    failed = len(outcomes) - done
    pending = len(unique) - len(outcomes)
    where = scrub(cfg.base_url) if cfg.base_url else "the OpenAI API"
    why = counters.last_transport_error or "no answer"
    return ErmPendingError(
        f"erm {task.kind}: the LLM server at {where} stopped answering ({why}): {done} documents done, {pending} "
        f"pending, {failed} failed of {len(unique)}; answers so far are cached: re-run the same command to resume "
        f"(it sends only the {pending} pending documents)",
        done=done,
        pending=pending,
        failed=failed,
    )


def truncate_input(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at the last whitespace in the final 10% when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ", int(limit * 0.9))
    return cut[:space] if space > 0 else cut


def preflight_if_unanswered(texts: list[str], task: Task, cfg: ErmConfig, cache_dir: Path) -> int:
    """For an LLM backend: if the cache lacks an answer for any of `texts`, run the pre-flight check now (a missing
    key or a dead server fails at once, before minutes of other work); returns how many lack an answer.

    The recipe calls it before mining negatives, which come before the maps: without it a dead server would only
    be found after the base model had embedded the corpus.
    """
    if not cfg.is_llm:
        return 0
    scope = scope_of(task, cfg)
    keys = list({scope.key(truncate_input(t, cfg.max_input_chars)) for t in texts})
    with ErmCache(cache_dir) as cache:
        answered = set(cache.results(keys))
        if not cfg.retry_failed:  # kept failures are answers too; transport failures are always re-sent
            answered |= {k for k, o in cache.failures(keys).items() if not is_transport_reason(o.reason)}
    missing = len(keys) - len(answered)
    if missing and getattr(cfg, "serve", False):  # the run starts the server later: check what fails without it
        from apex.erm.serve import check_servable

        check_servable(cfg)
    elif missing:
        from apex.erm.client import make_client, preflight

        preflight(make_client(cfg), cfg)
    return missing


def answer_texts(texts: list[str], task: Task, cfg: ErmConfig, cache_dir: Path, *, progress: bool = True) -> Answers:
    """Run steps 1-4 of the module docstring; returns the outcomes and run statistics."""
    backend = backend_of(cfg)
    if backend.answer is None or task.kind not in backend.tasks:
        raise ValueError(f"erm={cfg.name} cannot run task {task.kind!r}: it answers {list(backend.tasks)}")
    t0 = time.perf_counter()
    scope = scope_of(task, cfg)
    n_truncated = sum(1 for t in texts if len(t) > cfg.max_input_chars)
    texts = [truncate_input(t, cfg.max_input_chars) for t in texts]
    keys = [scope.key(t) for t in texts]
    first_text: dict[str, str] = {}
    for k, t in zip(keys, texts, strict=True):
        first_text.setdefault(k, t)
    unique = list(first_text)
    settings = cfg.cache_settings() if hasattr(cfg, "cache_settings") else {}
    # The scope's lock (ErmCache.claim) makes parallel jobs that need the same answers pay for them once.
    with ErmCache(cache_dir, settings) as cache, cache.claim(scope):
        cached = cache.results(unique)
        failed = {k: o for k, o in cache.failures(unique).items() if not is_transport_reason(o.reason)}
        pending = [
            Pending(k, text_sha256(first_text[k]), first_text[k])
            for k in unique
            if k not in cached and (k not in failed or cfg.retry_failed)
        ]
        skipped_failures = sum(1 for k in unique if k in failed and not cfg.retry_failed)
        log.info(
            "erm %s (%s, %s): %d texts, %d unique, %d cached, %d stored failures %s, %d to answer",
            task.kind, cfg.name, scope.model, len(texts), len(unique), len(cached), len(failed),
            "to retry" if cfg.retry_failed else "kept", len(pending),
        )  # fmt: skip
        counters = Counters()
        if pending:
            counters = backend.answer(pending, task, cfg, cache, scope, progress)
        outcomes = {k: o for k, o in cache.failures(unique).items() if not is_transport_reason(o.reason)}
        outcomes.update(cache.results(unique))
    if len(outcomes) < len(unique):
        raise _pending_error(task, cfg, unique, outcomes, counters)
    fresh = {p.key for p in pending}
    run_prompt = sum(o.prompt_tokens for k, o in outcomes.items() if k in fresh)
    run_completion = sum(o.completion_tokens for k, o in outcomes.items() if k in fresh)
    price = 1.0 if getattr(cfg, "mode", "online") == "online" else cfg.batch_discount
    per_prompt, per_completion = getattr(cfg, "price_prompt_per_1m", 0.0), getattr(cfg, "price_completion_per_1m", 0.0)

    def cost(p: int, c: int) -> float:
        return price * (p * per_prompt + c * per_completion) / 1e6

    all_prompt = sum(o.prompt_tokens for o in outcomes.values())
    all_completion = sum(o.completion_tokens for o in outcomes.values())
    stats = {
        "n_texts": float(len(texts)),
        "n_unique_texts": float(len(unique)),
        "n_truncated": float(n_truncated),
        "cache_hits": float(len(cached)),
        "failures_skipped": float(skipped_failures),
        "requests_sent": float(counters.requests_sent),
        "retries": float(counters.retries),
        "reasks": float(counters.reasks),
        "prompt_tokens": float(run_prompt),
        "completion_tokens": float(run_completion),
        "est_cost_usd": cost(run_prompt, run_completion),
        "total_prompt_tokens": float(all_prompt),
        "total_completion_tokens": float(all_completion),
        "total_est_cost_usd": cost(all_prompt, all_completion),
        "seconds": time.perf_counter() - t0,
    }
    if not cfg.is_llm:  # spaCy sends no request and pays nothing: no cost metrics rather than zeros that read as data
        stats = {k: v for k, v in stats.items() if k not in LLM_ONLY_STATS}
    return Answers(keys, outcomes, fresh, stats)
