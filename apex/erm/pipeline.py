"""`build_maps`: a table of (id, text) → the maps table of docs/design.md, plus failures, per-document usage, stats.

Every input row gets exactly one maps row, in input order, with status

- `ok`: a valid map whose rendering is long enough; `text` is the rendering the model trains on;
- `empty`: a valid but degenerate map (no entities, or rendering shorter than `min_chars`); `map_json` and the
  (short) rendering are kept for inspection, and the training view falls back to the plain text;
- `failed`: no valid map (see `failures` for the reason); `map_json` and `text` are empty strings.

Empty and failed documents are counted in `stats` and logged with their ids, never passed on silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from apex.core.errors import InputError
from apex.erm.config import ErmConfig
from apex.erm.prompts import MAP_TASK
from apex.erm.registry import backend_of
from apex.erm.render import STATUS_EMPTY, STATUS_FAILED, STATUS_OK, classify, render_map
from apex.erm.runner import answer_texts
from apex.erm.schema import EntityMap

log = logging.getLogger("apex.erm")

MAPS_COLUMNS = ["doc_id", "map_json", "text", "status"]
FAILURE_COLUMNS = ["doc_id", "reason", "attempts"]
USAGE_COLUMNS = [
    "doc_id", "cached", "attempts", "prompt_tokens", "completion_tokens", "response_model", "system_fingerprint",
]  # fmt: skip
_SHOW_IDS = 10  # ids named in a log line; the full lists are in the returned tables


@dataclass
class ErmResult:
    """maps (doc_id, map_json, text, status); failures (doc_id, reason, attempts); usage per document; stats."""

    maps: pd.DataFrame
    failures: pd.DataFrame
    usage: pd.DataFrame
    stats: dict[str, float]


def check_items(items: pd.DataFrame, source: str = "<items>") -> None:
    """Columns `id` and `text`; ids unique non-empty strings; texts non-empty strings. Raises `InputError`."""
    for column in ("id", "text"):
        if column not in items.columns:
            raise InputError(f"missing column; columns are {list(items.columns)}", file=source, field=column)
    seen: set[str] = set()
    for row, (doc_id, text) in enumerate(zip(items["id"], items["text"], strict=True)):
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(
                f"must be a non-empty string, got {doc_id!r}", file=source, record=f"row {row}", field="id"
            )
        if doc_id in seen:
            raise InputError("duplicate id", file=source, record=doc_id, field="id")
        seen.add(doc_id)
        if not isinstance(text, str) or not text.strip():
            raise InputError("must be a non-empty string", file=source, record=doc_id, field="text")


def build_maps(items: pd.DataFrame, cfg: ErmConfig, cache_dir: Path, *, progress: bool = True) -> ErmResult:
    """Maps of every row of `items` (columns `id`, `text`) with backend `cfg.name`, through the cache in `cache_dir`.

    Raises `InputError` on bad items, `ValueError` for `erm=none`, `ErmBackendError` when the LLM backend cannot
    run at all (no key, server down): before any document request.
    """
    if backend_of(cfg).answer is None:
        raise ValueError(f"erm={cfg.name} builds no maps; the recipe should skip the ERM stage")
    check_items(items)
    ids = [str(i) for i in items["id"]]
    long_ids = [i for i, t in zip(ids, items["text"], strict=True) if len(t) > cfg.max_input_chars]
    if long_ids:
        log.warning(
            "erm: %d documents longer than erm.max_input_chars=%d characters are cut to that length: %s%s",
            len(long_ids), cfg.max_input_chars, ", ".join(long_ids[:_SHOW_IDS]), " ..." if len(long_ids) > _SHOW_IDS
            else "",
        )  # fmt: skip
    answers = answer_texts([str(t) for t in items["text"]], MAP_TASK, cfg, Path(cache_dir), progress=progress)

    maps_rows, fail_rows, usage_rows = [], [], []
    rendered: dict[str, tuple[str, str, str]] = {}  # key → (map_json, text, status), rendered once per unique text
    for doc_id, key in zip(ids, answers.keys, strict=True):
        outcome = answers.outcomes.get(key)
        if key not in rendered:
            if outcome is None or not outcome.ok:
                rendered[key] = ("", "", STATUS_FAILED)
            else:
                erm = parse_cached(outcome.payload, key, Path(cache_dir))
                text = render_map(erm)
                rendered[key] = (outcome.payload, text, classify(erm, text, cfg.min_chars))
        maps_rows.append((doc_id, *rendered[key]))
        if outcome is None:
            fail_rows.append((doc_id, "no answer stored (batch not finished?)", 0))
            continue
        if not outcome.ok:
            fail_rows.append((doc_id, outcome.reason, outcome.attempts))
        usage_rows.append(
            (doc_id, key not in answers.fresh, outcome.attempts, outcome.prompt_tokens, outcome.completion_tokens,
             outcome.response_model, outcome.system_fingerprint)
        )  # fmt: skip
    maps = pd.DataFrame(maps_rows, columns=MAPS_COLUMNS).astype(str)
    failures = pd.DataFrame(fail_rows, columns=FAILURE_COLUMNS).astype({"doc_id": str, "reason": str, "attempts": int})
    usage = pd.DataFrame(usage_rows, columns=USAGE_COLUMNS)

    counts = maps["status"].value_counts()
    stats = {
        "n_ok": float(counts.get(STATUS_OK, 0)),
        "n_empty": float(counts.get(STATUS_EMPTY, 0)),
        "n_failed": float(counts.get(STATUS_FAILED, 0)),
        **answers.stats,
    }
    for status in (STATUS_EMPTY, STATUS_FAILED):
        bad = maps.loc[maps["status"] == status, "doc_id"].tolist()
        if bad:
            log.warning(
                "erm: %d of %d documents have status %r (plain text will be used for them): %s%s",
                len(bad), len(maps), status, ", ".join(bad[:_SHOW_IDS]), " ..." if len(bad) > _SHOW_IDS else "",
            )  # fmt: skip
    log.info("erm maps: %s", {k: round(v, 4) for k, v in stats.items()})
    return ErmResult(maps=maps, failures=failures, usage=usage, stats=stats)


def parse_cached(payload: str, key: str, cache_dir: Path) -> EntityMap:
    """A stored answer as a map; a malformed one (the cache edited or damaged) names the file and the row."""
    try:
        return EntityMap.from_json(payload)
    except ValueError as err:
        from apex.erm.cache import DB_NAME

        raise InputError(
            f"malformed stored ERM answer ({str(err).splitlines()[0]}); delete that row (or the file) and re-run to "
            f"ask again",
            file=cache_dir / DB_NAME,
            record=f"results key {key[:16]}",
        ) from None
