"""Bands: which eligible candidates count as hard and which as soft.

A band is an inclusive interval on one axis (see `BandConfig`): rank in the base ranking, raw cosine, or
percentile of the pooled candidate scores. Percentiles are turned into cosine thresholds once, over the scores of
all eligible candidates of all queries (the calibration), so "the top 10% of candidates" means the same for a model
whose cosines sit around 0.8 and one whose cosines sit around 0.3. Percentiles *within* one query would only
repeat the rank window (every query has the same K candidates), which is why they are pooled.
"""

from __future__ import annotations

import numpy as np

from apex.sampling.candidates import CandidatePool
from apex.sampling.config import BandConfig


def band_thresholds(band: BandConfig, pool: CandidatePool) -> tuple[float, float]:
    """The band as a closed interval on its own axis: ranks, or cosine thresholds (percentiles calibrated here)."""
    if band.by == "rank":
        return float(band.low), float(band.high)  # type: ignore[arg-type]  # validated: both set for ranks
    if band.by == "score":
        low = -np.inf if band.low is None else band.low
        high = np.inf if band.high is None else band.high
        return float(low), float(high)
    calibration = pool.scores[pool.eligible]
    if calibration.size == 0:
        # Nothing is eligible anywhere: an empty interval, so the band is empty and the shortage is counted.
        return np.inf, -np.inf
    low, high = np.percentile(calibration.astype(np.float64), [band.low, band.high])
    return float(low), float(high)


def band_mask(band: BandConfig, pool: CandidatePool, thresholds: tuple[float, float]) -> np.ndarray:
    """(Q, K) bool: eligible candidates inside the band's closed interval."""
    low, high = thresholds
    axis = pool.ranks if band.by == "rank" else pool.scores
    return pool.eligible & (axis >= low) & (axis <= high)


def draw(mask: np.ndarray, keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Pick, in every row, the `want[row]` allowed cells (mask) with the smallest keys; (Q, K) bool.

    With keys ~ U(0, 1) independent per cell this is a uniform draw without replacement among the allowed cells
    of the row (the order of i.i.d. keys is a uniformly random permutation); with keys = column index it takes
    the best-ranked ones. A row with fewer allowed cells than wanted gets all of them: the caller counts the rest.
    """
    picked = np.zeros(mask.shape, dtype=bool)
    most = int(want.max(initial=0))
    if most == 0 or mask.shape[1] == 0:
        return picked
    masked = np.where(mask, keys, np.inf)  # (Q, K): disallowed cells sort last
    order = np.argsort(masked, axis=1, kind="stable")[:, :most]  # (Q, most)
    ok = np.isfinite(np.take_along_axis(masked, order, axis=1)) & (np.arange(order.shape[1])[None, :] < want[:, None])
    rows = np.broadcast_to(np.arange(mask.shape[0])[:, None], order.shape)
    picked[rows[ok], order[ok]] = True
    return picked
