"""How much shorter the maps are than the documents: the paper reports a 37.71% cut in input size.

Per document i, with n_i the plain length and m_i the map's length (in tokens of the base model's tokenizer, no
special tokens, no truncation; and in characters):

    reduction_i = 100 * (1 - m_i / n_i)      (percent; negative when the map is longer than the document)

The summary gives the mean and median of reduction_i, quantiles of its distribution, and the aggregate reduction
100 * (1 - Σm / Σn), which weights long documents more (the paper does not say which it reports, so we give both).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _token_counts(texts: Sequence[str], tokenizer: Any) -> np.ndarray:
    """Token count per text; `tokenizer` is a Hugging Face tokenizer (callable on a list of strings)."""
    if not len(texts):
        return np.zeros(0, dtype=np.int64)
    # Counting is not feeding the model: the tokenizer's "longer than the maximum sequence length ... indexing errors"
    # warning would be a false alarm here, so its logger is silenced for this call (any tokenizer, real or fake).
    quiet = logging.getLogger("transformers.tokenization_utils_base")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    finally:
        quiet.setLevel(level)
    return np.array([len(ids) for ids in encoded], dtype=np.int64)


def size_reduction(
    plain: Sequence[str], mapped: Sequence[str], tokenizer: Any
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-document sizes and reductions (plain vs map), and their summary (see the module docstring).

    per_doc columns: plain_tokens, map_tokens, plain_chars, map_chars, token_reduction_pct, char_reduction_pct.
    summary keys: n_docs; for unit in (token, char): {unit}_reduction_mean_pct, _median_pct, _aggregate_pct,
    _q05_pct ... _q95_pct; plus mean_plain_tokens and mean_map_tokens.
    """
    if len(plain) != len(mapped):
        raise ValueError(f"plain and mapped differ in length: {len(plain)} vs {len(mapped)}")
    per_doc = pd.DataFrame(
        {
            "plain_tokens": _token_counts(plain, tokenizer),
            "map_tokens": _token_counts(mapped, tokenizer),
            "plain_chars": np.array([len(t) for t in plain], dtype=np.int64),
            "map_chars": np.array([len(t) for t in mapped], dtype=np.int64),
        }
    )
    summary: dict[str, float] = {"n_docs": float(len(per_doc))}
    for unit, plain_col, map_col in (("token", "plain_tokens", "map_tokens"), ("char", "plain_chars", "map_chars")):
        n = per_doc[plain_col].to_numpy(dtype=np.float64)
        m = per_doc[map_col].to_numpy(dtype=np.float64)
        # An empty plain document has no defined reduction: NaN, excluded from the statistics below.
        with np.errstate(divide="ignore", invalid="ignore"):
            red = np.where(n > 0, 100.0 * (1.0 - m / n), np.nan)
        per_doc[f"{unit}_reduction_pct"] = red
        valid = red[~np.isnan(red)]
        summary[f"{unit}_reduction_mean_pct"] = float(valid.mean()) if valid.size else float("nan")
        summary[f"{unit}_reduction_median_pct"] = float(np.median(valid)) if valid.size else float("nan")
        summary[f"{unit}_reduction_aggregate_pct"] = (
            float(100.0 * (1.0 - m.sum() / n.sum())) if n.sum() else float("nan")
        )
        for q in QUANTILES:
            summary[f"{unit}_reduction_q{round(q * 100):02d}_pct"] = (
                float(np.quantile(valid, q)) if valid.size else float("nan")
            )
    summary["mean_plain_tokens"] = float(per_doc["plain_tokens"].mean()) if len(per_doc) else float("nan")
    summary["mean_map_tokens"] = float(per_doc["map_tokens"].mean()) if len(per_doc) else float("nan")
    return per_doc, summary


def write_reduction_histogram(per_doc: pd.DataFrame, path: Path, *, unit: str = "token", bins: int = 40) -> Path:
    """PNG histogram of per-document reduction (%) with the mean, the median and the paper's 37.71% marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in worker processes
    import matplotlib.pyplot as plt

    values = per_doc[f"{unit}_reduction_pct"].dropna().to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.hist(values, bins=bins, color="#4C72B0", alpha=0.85)
    if values.size:
        ax.axvline(values.mean(), color="black", linestyle="-", label=f"mean {values.mean():.1f}%")
        ax.axvline(np.median(values), color="black", linestyle="--", label=f"median {np.median(values):.1f}%")
    ax.axvline(37.71, color="#C44E52", linestyle=":", label="paper 37.71%")
    ax.set_xlabel(f"{unit} reduction per document (%), map vs plain text")
    ax.set_ylabel("documents")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
