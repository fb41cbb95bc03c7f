"""Multiple-comparison corrections over a family of comparisons (Holm here, Benjamini-Hochberg by scipy).

Both take raw p-values (NaN allowed: a test that could not run) and return adjusted p-values in the same order;
NaNs stay NaN and do not count towards the family size m.

Holm (family-wise error rate): sort p ascending, p_(1) <= ... <= p_(m); the adjusted value of the j-th is
    max_{i <= j} min(1, (m - i + 1) * p_(i)).
Rejecting adjusted p <= alpha keeps P(any false rejection) <= alpha under any dependence.

Holm is computed here, in a few array operations, and tested against statsmodels' `multipletests`: that function
calls `gc.collect()` on every call, which took 50 ms per family in a process holding models (the calibration's
thousands of families took minutes).

Benjamini-Hochberg (false discovery rate): the adjusted value of the j-th is
    min_{i >= j} min(1, m * p_(i) / i).
Rejecting adjusted p <= alpha keeps the expected share of false rejections <= alpha (independent or positively
dependent tests). Under the global null it also bounds the family-wise rate by alpha.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats


def _adjust(pvalues: np.ndarray, adjust: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    if ok.any():
        out[ok] = adjust(p[ok])
    return out


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise), same shape and order as the input."""
    return _adjust(pvalues, _holm)


def _holm(p: np.ndarray) -> np.ndarray:
    m = len(p)
    order = np.argsort(p, kind="stable")
    # (m - i + 1) * p_(i) for i = 1..m, then the running maximum keeps the adjusted values monotone
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), same order as the input."""
    return _adjust(pvalues, lambda p: stats.false_discovery_control(p, method="bh"))
