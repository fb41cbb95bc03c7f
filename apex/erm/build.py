"""DVC `erm` stage: maps of the documents training reads (after the `negatives` stage, which says which).

    python -m apex.erm.build --params params.yaml --splits data/prepared --negatives data/negatives --out data/erm

Reads the `erm:` section of params.yaml (the keys of `ErmConfig`), loads the prepared splits
(`apex.data.load_splits`) and the mined negatives, and writes, through `apex.store.outputs.write_maps` (the
function runs use too),

    <out>/<split>/maps.parquet            doc_id, map_json, text, status       (train: one row per needed
                                          document, i.e. training positive or mined negative, apex.erm.needed;
                                          val/test with eval.view=erm: one row per corpus document)
    <out>/<split>/failures.parquet        doc_id, reason, attempts
    <out>/<split>/query_maps.parquet      (apply_to: documents_and_queries; doc_id holds the query_id)
    <out>/inputs.json                     the inputs that determine the maps, and their key

Timings, cache hits and token usage vary between two builds of the same maps, so they are printed (JSON on
stdout), not written into the output: the same inputs give the same bytes and the same dvc.lock md5.
The answer cache lives under paths.cache_dir/erm (or --cache-dir), outside the DVC output, so `dvc repro` after
a change elsewhere re-reads answers instead of paying for them again. `erm: {name: none}` writes empty tables.
Exit status: 0 ok, 2 bad input or config, 3 backend unavailable (no key, server down).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from apex.core.errors import InputError
from apex.erm.config import ErmConfig


def build(
    cfg: ErmConfig,
    splits_dir: Path,
    negatives_dir: Path,
    out: Path,
    cache_dir: Path,
    progress: bool,
    eval_view: str = "plain",
) -> dict[str, dict]:
    """Maps of what a run reads (train: its needed documents; val and test whole with eval.view=erm) into `out`
    (with inputs.json), through `apex.store.stages.maps_work`; returns the stats per split and the needed counts."""
    import pandas as pd

    from apex.data import load_splits
    from apex.sampling.outputs import NEGATIVES_FILE
    from apex.store.stages import maps_work
    from apex.store.store import build_into

    splits = load_splits(splits_dir)
    if not (negatives_dir / NEGATIVES_FILE).is_file():
        raise InputError("has no negatives: run the negatives stage first", file=negatives_dir / NEGATIVES_FILE)
    negatives = pd.read_parquet(negatives_dir / NEGATIVES_FILE)
    work, needed = maps_work(splits, negatives, cfg, eval_view, cache_dir, progress)
    logging.getLogger("apex.erm").info("%s", needed.line())
    return {**build_into(out, work.inputs, work.build), "needed": needed.metrics()}


def main(argv: list[str] | None = None) -> int:
    from apex.eval.config import EvalConfig
    from apex.store.stage_cli import cache_dir, read_config

    parser = argparse.ArgumentParser(prog="python -m apex.erm.build", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="YAML file with an erm: section")
    parser.add_argument("--splits", type=Path, default=Path("data/prepared"), help="folder written by apex.data")
    parser.add_argument(
        "--negatives", type=Path, default=Path("data/negatives"), help="folder of the negatives stage (the needed set)"
    )
    parser.add_argument("--out", type=Path, default=Path("data/erm"), help="output folder (a DVC output)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="answer cache (default: paths.cache_dir/erm)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # An InputError (exit 2) or ErmBackendError (exit 3) becomes one line in apex.core.cli.guard.
    cfg = read_config(args.params, ErmConfig, "erm")
    cache = args.cache_dir or cache_dir(args.params) / "erm"
    view = read_config(args.params, EvalConfig, "eval").view
    stats = build(cfg, args.splits, args.negatives, args.out, cache, progress=not args.no_progress, eval_view=view)
    print(json.dumps({"out": str(args.out), "stats": stats}, sort_keys=True))
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    sys.exit(guard(main, "python -m apex.erm.build"))
