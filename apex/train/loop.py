"""The training loop: setup → train, pausing at every stop point → clean up. One screen, no callbacks maze."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import get_linear_schedule_with_warmup

from apex.core.progress import progress_bar
from apex.model.encoder import Encoder
from apex.train.batching import BucketSampler, ShuffleSampler
from apex.train.config import TrainConfig
from apex.train.eta import Eta, format_seconds
from apex.train.examples import Example, collate
from apex.train.loss import InfoNCELoss
from apex.train.tokens import TokenCache

log = logging.getLogger("apex.train")

StopPointHook = Callable[[int, float], None]
# tqdm's own ETA knows nothing of the evaluations at stop points: show ours (steps and evaluations) instead.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # tqdm adds ", "
ETA_AFTER_STEPS = 3  # log the estimate of the remaining time once this many steps have been timed


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


def make_sampler(
    examples: Sequence[Example], tokens: TokenCache, cfg: TrainConfig, seed: int
) -> ShuffleSampler | BucketSampler:
    """Shuffled batches, or (``length_buckets``) batches of similar positive-document length, one per paragraph."""
    if not cfg.length_buckets:
        return ShuffleSampler(len(examples), cfg.batch_size, seed)
    lengths = tokens.lengths([e.positive for e in examples], "document")
    groups = [e.doc_id for e in examples]
    return BucketSampler(lengths, cfg.batch_size, seed, window=cfg.bucket_window, groups=groups)


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
    eval_seconds: float = 0.0,
) -> TrainResult:
    """Optimise InfoNCE on ``examples``; call ``on_stop_point(step, fraction)`` at each stop point.

    ``eval_seconds`` (what one stop point's evaluation takes, e.g. the step-0 one) lets the remaining-time
    estimate count the evaluations still due, not only the steps.
    """
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
    tokens = TokenCache(encoder)  # each text tokenised once per run; a step only pads
    batches = iter(make_sampler(examples, tokens, cfg, seed))  # data order: the run's own seeded generator
    result = TrainResult(total_steps=total, stop_steps=stops)
    eta = Eta(total, frozenset(stops), eval_seconds)

    encoder.model.train()
    bar = progress_bar(range(1, total + 1), desc="train", enabled=progress, bar_format=BAR_FORMAT)
    for step in bar:
        started = time.perf_counter()
        batch = collate([examples[i] for i in next(batches)], relevant)
        q = encoder.embed_rows(tokens.rows(batch.queries, "query"), cfg.micro_batch)  # (B, dim)
        d = encoder.embed_rows(tokens.rows(batch.documents, "document"), cfg.micro_batch)  # (B + mined, dim)
        loss = loss_fn(q, d, batch.relevant_mask.to(q.device))
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - started
        eta.add_step(seconds)
        result.train_seconds += seconds
        result.examples_seen += len(batch.queries)
        result.losses.append(float(loss.detach()))
        if on_loss is not None and (step % cfg.log_every == 0 or step == total):
            on_loss(step, sum(result.losses[-cfg.log_every :]) / len(result.losses[-cfg.log_every :]))
        if step in stops:
            bar.clear()
            paused = time.perf_counter()
            on_stop_point(step, stops[step])
            eta.add_stop(time.perf_counter() - paused)
            encoder.model.train()
        if step == min(ETA_AFTER_STEPS, total) and step < total:
            log.info("training %d steps: %s", total, eta.describe(step))
        bar.set_postfix_str(f"loss {result.losses[-1]:.4f}, {format_seconds(eta.remaining(step))} left", refresh=False)
    bar.close()
    return result
