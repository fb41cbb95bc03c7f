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

from apex.core.errors import UsageError
from apex.core.secrets import scrub

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
    parser.add_argument(
        "--force", action="store_true", help="export a run that is not FINISHED (RUNNING, FAILED, KILLED) anyway"
    )
    return parser.parse_args(argv)


def tracking_client(uri: str | None):
    """A client for a store that exists and answers: checked first (seconds), so a dead server fails fast and an
    empty folder gets no new database (MLflow would create one, then find no run in it)."""
    from apex.core.preflight import check_tracking

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    check_tracking(uri, "apex", must_exist=True)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_finished(client, run_id: str, force: bool) -> None:
    """The run exists, and is FINISHED: one that is not may have no or partial results, so it is refused unless
    --force (then a warning). Checked before the heavy imports (torch, transformers): a wrong id fails in seconds."""
    from mlflow.exceptions import MlflowException

    try:
        status = client.get_run(run_id).info.status
    except MlflowException:
        raise UsageError(
            f"no run with id {run_id!r} in {scrub(client.tracking_uri)}; `python -m apex.report` lists a sweep's runs, "
            f"and the MLflow UI every run"
        ) from None
    if status == "FINISHED":
        return
    if not force:
        raise UsageError(
            f"run {run_id} is {status}, not FINISHED: its stop points may be missing or partial; export a finished "
            f"run, or pass --force to export this one anyway"
        )
    log = logging.getLogger("apex.export")
    log.warning("run %s is %s, not FINISHED: exporting it because of --force", run_id, status)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from apex.core.cli import quiet_logs  # no warnings that do not concern the export (bitsandbytes' kernels)
    from apex.pipeline.progress import set_progress_bars

    quiet_logs(verbose=False)
    set_progress_bars(True)  # drawn on a terminal only
    client = tracking_client(args.tracking_uri)
    check_finished(client, args.run_id, args.force)
    import torch

    from apex.export import ExportError, export_run
    from apex.export.merge import MergeError
    from apex.export.verify import VerificationError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = export_run(
            client, args.run_id, args.step, args.out, dtype=args.dtype, verify=args.verify, cache_dir=args.cache_dir
        )
        if args.log_model:
            from apex.export.mlflow_model import log_export

            model_uri = log_export(client, result)
            print(f"logged as MLflow model {model_uri}")
    except (ExportError, FileExistsError, ValueError) as error:  # the run, step, folder or dtype asked for: exit 2
        raise UsageError(str(error)) from error
    except (MergeError, VerificationError) as error:  # the export does not reproduce the run: exit 1, one line
        print(f"python -m apex.export: error: {scrub(str(error))}", file=sys.stderr)
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
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses, secrets scrubbed

    sys.exit(guard(main, "python -m apex.export"))
