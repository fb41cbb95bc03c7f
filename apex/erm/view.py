"""The training view: a corpus whose `text` is the rendered map, with the plain text kept where no usable map exists.

Documents whose map is `empty` or `failed` keep their plain text (a degenerate map would erase the document); the
counts are returned by `map_view_with_counts` and logged by both functions.
"""

from __future__ import annotations

import logging

import pandas as pd

from apex.core.errors import InputError
from apex.erm.render import STATUS_EMPTY, STATUS_FAILED, STATUS_OK

log = logging.getLogger("apex.erm")


def map_view_with_counts(corpus: pd.DataFrame, maps: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """(corpus with `text` = rendered map where status is ok, counts {mapped, fallback_empty, fallback_failed}).

    Every corpus document must have a maps row (`InputError` otherwise): a missing map is a wiring error, not a
    document to fall back on quietly. Columns and row order of `corpus` are kept.
    """
    for column in ("doc_id", "text", "status"):
        if column not in maps.columns:
            raise InputError(f"missing column; columns are {list(maps.columns)}", file="<maps>", field=column)
    if maps["doc_id"].duplicated().any():
        dup = maps.loc[maps["doc_id"].duplicated(), "doc_id"].iloc[0]
        raise InputError("duplicate doc_id", file="<maps>", record=str(dup), field="doc_id")
    by_id = maps.set_index("doc_id")
    missing = ~corpus["doc_id"].isin(by_id.index)
    if missing.any():
        raise InputError(
            f"{int(missing.sum())} corpus documents have no maps row",
            file="<maps>",
            record=str(corpus.loc[missing, "doc_id"].iloc[0]),
            field="doc_id",
        )
    status = by_id.loc[corpus["doc_id"], "status"].to_numpy()
    mapped_text = by_id.loc[corpus["doc_id"], "text"].to_numpy()
    unknown = set(status) - {STATUS_OK, STATUS_EMPTY, STATUS_FAILED}
    if unknown:
        raise InputError(f"unknown status values {sorted(unknown)}", file="<maps>", field="status")
    use_map = status == STATUS_OK
    view = corpus.copy()
    view["text"] = corpus["text"].where(~use_map, mapped_text)
    counts = {
        "mapped": int(use_map.sum()),
        "fallback_empty": int((status == STATUS_EMPTY).sum()),
        "fallback_failed": int((status == STATUS_FAILED).sum()),
    }
    if counts["fallback_empty"] or counts["fallback_failed"]:
        log.warning("erm view: plain text kept for %s of %d documents", counts, len(corpus))
    return view, counts


def map_view(corpus: pd.DataFrame, maps: pd.DataFrame) -> pd.DataFrame:
    """The corpus with `text` replaced by the rendered map (plain text kept, counted and logged, where not ok)."""
    return map_view_with_counts(corpus, maps)[0]


def map_quality(stats: dict[str, float]) -> tuple[str, dict[str, float]]:
    """(one summary line, MLflow metrics) of a training view: valid maps, re-asks, documents left as plain text.

    `stats`: the view's counts as `view_mapped`, `view_fallback_empty`, `view_fallback_failed`, plus `reasks` and
    `requests_sent` when the maps were built by this run (maps read from the store cost no request).
    A valid map is a validated answer: `ok`, or `empty` (valid, but too short to replace the text).
    """
    ok, empty, failed = (int(stats.get(f"view_{k}", 0)) for k in ("mapped", "fallback_empty", "fallback_failed"))
    n = ok + empty + failed
    plain = empty + failed
    share = 100.0 * plain / n if n else 0.0
    line = (
        f"{ok + empty} valid of {n} documents ({ok} used, {empty} too short), {failed} failed; "
        f"{plain} kept their plain text ({share:.1f}%)"
    )
    if "reasks" in stats:
        line += f"; {int(stats['reasks'])} re-asks, {int(stats.get('requests_sent', 0))} requests this run"
    else:
        line += "; maps from the store (no request this run)"
    metrics = {"erm_valid_maps": float(ok + empty), "erm_plain_text_documents": float(plain)}
    metrics["erm_plain_text_pct"] = share
    return line, metrics
