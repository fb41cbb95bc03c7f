"""`python -m apex.export RUN_ID [--step N]`: a run's stop point as a sentence-transformers model directory.

Examples:
    python -m apex.export 23013d7db70046179cd41d2ab6fb3d7d                 # the stop point the run chose
    python -m apex.export 23013d7db70046179cd41d2ab6fb3d7d --step last     # the end of the budget
    python -m apex.export 23013d7db70046179cd41d2ab6fb3d7d --step 3 --out my-model --log-model
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_TRACKING_URI = "sqlite:///experiments/mlflow.db"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apex.export", description=__doc__.split("\n")[0])
    parser.add_argument("run_id", help="MLflow run id of an apex job run")
    parser.add_argument(
        "--step",
        default="chosen",
        help="training step of a stop point; 'chosen' (default: the one the run chose on validation rank@1, "
        "or report.stop), 'best' (highest validation rank@1) or 'last'",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: experiments/exports/<run>-step<N>)")
    parser.add_argument(
        "--tracking-uri", help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})"
    )
    parser.add_argument(
        "--dtype", default="auto", help="auto (float32; bfloat16 above 2B parameters), float32, bfloat16, float16"
    )
    parser.add_argument("--cache-dir", help="where base models are converted/cached (default: the run's setting)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip re-scoring the test split")
    parser.add_argument(
        "--log-model", action="store_true", help="also log the export to the run as an MLflow model (model/)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from apex.core.cli import quiet_logs  # no warnings that do not concern the export (bitsandbytes' kernels)
    from apex.pipeline.progress import set_progress_bars

    quiet_logs(verbose=False)
    set_progress_bars(True)  # drawn on a terminal only
    import torch
    from mlflow import MlflowClient

    from apex.export import ExportError, export_run
    from apex.export.merge import MergeError
    from apex.export.verify import VerificationError

    if args.threads:
        torch.set_num_threads(args.threads)
    client = MlflowClient(
        tracking_uri=args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    )
    try:
        result = export_run(
            client, args.run_id, args.step, args.out, dtype=args.dtype, verify=args.verify, cache_dir=args.cache_dir
        )
        if args.log_model:
            from apex.export.mlflow_model import log_export

            model_uri = log_export(client, result)
            print(f"logged as MLflow model {model_uri}")
    except (ExportError, MergeError, VerificationError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    check = result.rank_check
    print(f"exported run {result.run_id} step {result.step} to {result.out_dir} in {result.seconds:.1f} s")
    if check:
        run_rank = check["run_rank_at_1"]
        print(
            f"rank@1 on the run's test split ({check['n_queries']} queries, corpus {check['corpus_size']}): "
            f"export {check['rank_at_1']:.4f} (sentence-transformers, float32), harness "
            f"{check['harness_rank_at_1']:.4f} (apex encoder + adapter, float32); min cosine per text "
            f"{check['min_cosine']:.6f}; logged by the run {'n/a' if run_rank is None else f'{run_rank:.4f}'} "
            f"({check['run_precision']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
