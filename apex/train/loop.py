"""The training loop: setup → train, pausing at every stop point → clean up. One screen, no callbacks maze."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from apex.model.encoder import Encoder
from apex.train.config import TrainConfig
from apex.train.examples import Example, batches_forever, collate
from apex.train.loss import InfoNCELoss

log = logging.getLogger("apex.train")

StopPointHook = Callable[[int, float], None]


@dataclass
class TrainResult:
    total_steps: int
    stop_steps: dict[int, float]
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # optimisation only, evaluation at stop points excluded
    examples_seen: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.train_seconds if self.train_seconds else 0.0


def train(
    encoder: Encoder,
    examples: Sequence[Example],
    relevant: dict[str, frozenset[str]],
    cfg: TrainConfig,
    *,
    seed: int,
    on_stop_point: StopPointHook,
    on_loss: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Optimise InfoNCE on ``examples``; call ``on_stop_point(step, fraction)`` at each stop point."""
    if not examples:
        raise ValueError("no training examples")
    total = cfg.total_steps(len(examples))
    stops = cfg.stop_steps(len(examples))
    trainable = [p for p in encoder.model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters: add LoRA adapters before training")
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total), total)
    loss_fn = InfoNCELoss(cfg.temperature)
    generator = torch.Generator().manual_seed(seed)  # data order: the run's own RNG, never the global one
    batches = batches_forever(examples, cfg.batch_size, generator)
    result = TrainResult(total_steps=total, stop_steps=stops)

    encoder.model.train()
    bar = tqdm(range(1, total + 1), desc="train", disable=not progress)
    for step in bar:
        started = time.perf_counter()
        batch = collate(next(batches), relevant)
        q = encoder.embed(batch.queries, "query")  # (B, dim)
        d = encoder.embed(batch.documents, "document")  # (B + mined, dim)
        loss = loss_fn(q, d, batch.relevant_mask.to(q.device))
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.train_seconds += time.perf_counter() - started
        result.examples_seen += len(batch.queries)
        result.losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
        if on_loss is not None and (step % cfg.log_every == 0 or step == total):
            on_loss(step, sum(result.losses[-cfg.log_every :]) / len(result.losses[-cfg.log_every :]))
        if step in stops:
            bar.clear()
            on_stop_point(step, stops[step])
            encoder.model.train()
    bar.close()
    return result
