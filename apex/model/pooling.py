"""Token states → one vector per text.

hidden: (batch, seq, dim); mask: (batch, seq) with 1 on real tokens. Padding may be on either side.
"""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens' states: sum_t m_t h_t / sum_t m_t.  (batch, dim)"""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1.0)
    return summed / counts


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State of the first position (BERT's [CLS]); assumes right padding, as encoders use."""
    return hidden[:, 0]


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State of the last real token: what a causal decoder has read the whole text into.

    Works with left and right padding: the index of the last 1 in each mask row.
    """
    seq_len = mask.shape[1]
    positions = torch.arange(seq_len, device=mask.device).expand_as(mask)  # (batch, seq)
    last = torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values  # (batch,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


POOLERS = {"mean": mean_pool, "cls": cls_pool, "last_token": last_token_pool}
