"""InfoNCE over in-batch and mined negatives, with known positives masked out."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class InfoNCELoss(torch.nn.Module):
    """Contrastive loss of each query against every candidate document in the batch.

    For query i with embedding q_i and candidates d_1..d_M (the B positives first, then the mined negatives)
    the loss is the cross-entropy of softmax_j(q_i · d_j / τ) against j = i:

        L_i = -log( exp(q_i·d_i/τ) / Σ_{j ∉ P_i \\ {i}} exp(q_i·d_j/τ) )

    where P_i is the set of candidates that are *relevant to query i* (the same document drawn for another query
    of the batch, or a mined negative that is in fact labelled relevant): they are masked out rather than pushed
    away, because punishing a true match teaches the wrong thing.
    """

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, queries: torch.Tensor, candidates: torch.Tensor, relevant_mask: torch.Tensor) -> torch.Tensor:
        """queries (B, dim), candidates (M, dim) with M >= B and row i the positive of query i,
        relevant_mask (B, M) bool: True where candidate j is relevant to query i (the diagonal included)."""
        batch = queries.shape[0]
        if candidates.shape[0] < batch or relevant_mask.shape != (batch, candidates.shape[0]):
            raise ValueError(
                f"shapes: queries {queries.shape}, candidates {candidates.shape}, mask {relevant_mask.shape}"
            )
        logits = queries @ candidates.T / self.temperature  # (B, M)
        labels = torch.arange(batch, device=queries.device)
        # Mask other relevant candidates; keep the target itself.
        mask_out = relevant_mask.clone()
        mask_out[labels, labels] = False
        logits = logits.masked_fill(mask_out, torch.finfo(logits.dtype).min)
        return F.cross_entropy(logits, labels)
