"""Multiple-comparison corrections over every comparison in a report.

Both take raw p-values (NaN allowed: a test that could not run) and return adjusted p-values in the same order;
NaNs stay NaN and do not count towards the family size m.

Holm (family-wise error rate): sort p ascending, p_(1) <= ... <= p_(m); the adjusted value of the j-th is
    max_{i <= j} min(1, (m - i + 1) * p_(i)).
Rejecting adjusted p <= alpha keeps P(any false rejection) <= alpha under any dependence.

Benjamini-Hochberg (false discovery rate): the adjusted value of the j-th is
    min_{i >= j} min(1, m * p_(i) / i).
Rejecting adjusted p <= alpha keeps the expected share of false rejections <= alpha (independent or positively
dependent tests). Under the global null it also bounds the family-wise rate by alpha.
"""

from __future__ import annotations

import numpy as np


def _finite(pvalues: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.any((p[~np.isnan(p)] < 0) | (p[~np.isnan(p)] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    return p, ~np.isnan(p)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise), same shape and order as the input."""
    p, ok = _finite(pvalues)
    out = np.full(p.shape, np.nan)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = (m - np.arange(m)) * q[order]  # (m - i + 1) * p_(i), i 1-based
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    result = np.empty(m)
    result[order] = adjusted
    out[ok] = result
    return out


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), same order as the input."""
    p, ok = _finite(pvalues)
    out = np.full(p.shape, np.nan)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = q[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    result = np.empty(m)
    result[order] = adjusted
    out[ok] = result
    return out
