"""`python -m apex.report`: statistics, tables and figures for one sweep read from MLflow.

Examples:
    python -m apex.report                                  # latest sweep in experiment 'apex'
    python -m apex.report --sweep my-sweep-name --baseline "erm.name=none,sampler.name=in_batch"
    python -m apex.report --filter 'params.`training.lr` = "0.0001"' --name lr-1e-4
    python -m apex.report plan --effect 1,2 --seeds 3,5,10     # seeds and queries needed, from this pilot sweep
    python -m apex.report --register apex-squad                # + the winner's best seed into the Model Registry
    python -m apex.report --sweep nfcorpus --sweep scifact --name beir-2   # one report per corpus, then pooled
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from apex.core.errors import UsageError
from apex.report.config import DEFAULT_IGNORE_PARAMS, ReportConfig


def parse_args(argv: Sequence[str] | None = None) -> ReportConfig:
    parser = argparse.ArgumentParser(prog="python -m apex.report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///experiments/mlflow.db)"
    )
    parser.add_argument("--experiment", help="experiment name (default: apex)")
    parser.add_argument(
        "--sweep",
        help="sweep parent run id or run name (default: the latest apex.kind=sweep run); give it once per corpus "
        "to pool the corpora (corpus as a random factor) into <out-root>/<name>/across.md",
    )
    parser.add_argument("--filter", help="MLflow filter string selecting job runs directly, instead of a sweep")
    parser.add_argument("--name", help="report name: the folder under --out-root (default: the sweep's run name)")
    parser.add_argument(
        "--baseline",
        help="baseline param values, default 'erm.name=none,sampler.name=in_batch' (the plain-text arm); "
        "e.g. 'sampler.name=random' for the sampling ablation",
    )
    parser.add_argument(
        "--ignore-params",
        help=f"comma-separated globs never used to match baselines (default: {','.join(DEFAULT_IGNORE_PARAMS)})",
    )
    parser.add_argument("--out-root", help="folder for reports (default: experiments/reports, git-ignored)")
    parser.add_argument(
        "--commit",
        action="store_true",
        default=None,
        help="write the report under reports/ (tracked) to commit it with the code; default: experiments/reports/",
    )
    parser.add_argument(
        "--metric",
        help="primary metric: rank_at_1, recall_at_5, recall_at_10, mrr_at_10 or ndcg_at_10 (default: the runs' "
        "report.metric, else ndcg_at_10 for BEIR folders and rank_at_1 otherwise)",
    )
    parser.add_argument(
        "--stop",
        type=float,
        help="judge every comparison at this stop fraction, fixed in advance (report.stop); default: chosen on the "
        "validation figure of both arms' shared seeds, cross-fitted over seeds",
    )
    parser.add_argument("--n-permutations", type=int, help="sign-flip resamples of the secondary pooled test (10000)")
    parser.add_argument(
        "--confidence", type=float, help="level of the unadjusted intervals (default: 1 - alpha, the test's)"
    )
    parser.add_argument("--alpha", type=float, help="test level for verdicts and MDE (default: 0.05)")
    parser.add_argument("--power", type=float, help="power for the minimum detectable effect (default: 0.8)")
    parser.add_argument("--seed", type=int, help="random seed of the permutations and A/A splits (default: 0)")
    parser.add_argument(
        "--no-log",
        dest="log_to_mlflow",
        action="store_false",
        default=None,
        help="do not log the report to the sweep parent run",
    )
    parser.add_argument("--no-figures", dest="figures", action="store_false", default=None, help="skip the figures")
    args = vars(parser.parse_args(argv))
    return ReportConfig.from_cfg(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if argv[:1] == ["plan"]:
        from apex.report.plan import main as plan_main

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return plan_main(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from apex.export.register import split_register_args  # --register NAME [--register-seeds best|all]

    argv, register = split_register_args(argv)
    sweeps = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--sweep"]
    if len(sweeps) > 1:
        return across_main(argv, sweeps)
    config = parse_args(argv)  # a ReportConfigError is exit status 2 (apex.core.cli)
    from apex.core.preflight import check_tracking

    check_tracking(config.tracking_uri, config.experiment, must_exist=True)  # read-only: never create a database
    from apex.report.build import build_report  # heavy imports after argument checks
    from apex.report.select import SelectionError

    try:
        result = build_report(config)
    except SelectionError as error:  # no such sweep, no runs: what was asked for names nothing (exit 2)
        raise UsageError(str(error)) from error
    print(f"report written to {result.out_dir / 'report.md'} in {result.seconds:.1f} s")
    if result.logged_to_run:
        print(f"logged to MLflow run {result.logged_to_run} under report/")
    from mlflow import MlflowClient

    from apex.export.register import after_report  # headline → sweep parent's description; registry

    client = MlflowClient(tracking_uri=config.tracking_uri)
    after_report(result, register, client)
    log_headline(result, client)
    return 0


def across_main(argv: list[str], sweeps: list[str]) -> int:
    """One report per sweep (corpus), then across.md/across.json pooling their primary comparisons."""
    import json
    from dataclasses import asdict, replace

    from apex.report.build import build_report
    from apex.report.pool import across_corpora, render_across

    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--sweep", "--name"):
            skip = True
        else:
            rest.append(arg)
    names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--name"]
    config = parse_args(rest)
    results = []
    for sweep in sweeps:
        result = build_report(replace(config, sweep=sweep))
        print(f"report written to {result.out_dir / 'report.md'}")
        results.append(result.out_dir / "results.json")
    table, pooled = across_corpora(results, config.alpha)
    from apex.core.paths import child_path

    out = child_path(config.out_root, names[0] if names else "across-" + "-".join(sweeps)[:80], "report name")
    out.mkdir(parents=True, exist_ok=True)
    (out / "across.md").write_text(render_across(table, pooled, config.alpha), encoding="utf-8")
    payload = {"corpora": table.to_dict(orient="records"), "pooled": {k: asdict(v) for k, v in pooled.items()}}
    (out / "across.json").write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")
    print(f"across corpora: {out / 'across.md'}")
    return 0


def log_headline(result, client) -> None:
    """The primary comparisons' numbers as metrics and tags of the sweep parent (apex.tracking.headline)."""
    parent, table = result.data.meta.get("parent_run_id"), result.data.comparisons
    if not parent or not len(table):
        return
    from apex.tracking.headline import Headline, log_sweep_headline

    labels = result.data.meta.get("labels", {})
    primary = table[table["role"] == "primary"].to_dict(orient="records")
    headlines = [
        Headline(metric=str(r.get("metric") or "rank_at_1"), difference=float(r["diff"]), ci_low=float(r["ci_adj_low"]),
                 ci_high=float(r["ci_adj_high"]), p=float(r["p_crossed"]), verdict=str(r["verdict"]),
                 comparison=f"{labels.get(r['cell'], r['cell'])} vs {labels.get(r['baseline'], r['baseline'])}",
                 stop=float(r["stop_fraction"]), baseline=float(r["mean_baseline"]), treatment=float(r["mean_cell"]),
                 level=1 - result.data.config.alpha)
        for r in primary
    ]  # fmt: skip
    log_sweep_headline(client, str(parent), headlines)


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    sys.exit(guard(main, "python -m apex.report"))
