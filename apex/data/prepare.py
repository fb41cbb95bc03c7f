"""DVC `prepare` stage: `python -m apex.data.prepare --params params.yaml --out data/prepared`.

Reads the `dataset:` section of params.yaml (generated from conf/ by `python -m apex.core.params_file`), builds the
splits with `prepare_splits` and writes them through `apex.store.stages.prepared_work` (the owner runs use too),
with `inputs.json` (the splits' content fingerprint: a run whose config gives the same splits finds them pinned).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from apex.data.config import DatasetConfig
from apex.data.splits import prepare_splits


def main(argv: list[str] | None = None) -> int:
    from apex.store.stage_cli import read_config
    from apex.store.stages import prepared_work
    from apex.store.store import build_into

    parser = argparse.ArgumentParser(prog="python -m apex.data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="YAML file with a dataset: section")
    parser.add_argument("--out", type=Path, default=Path("data/prepared"), help="output folder for the splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = read_config(args.params, DatasetConfig, "dataset")  # an InputError: one line, exit 2 (apex.core.cli)
    splits = prepare_splits(cfg)
    work = prepared_work(splits, cfg)
    build_into(args.out, work.inputs, work.build)
    counts = {split: ds.counts() for split, ds in splits.items()}
    print(json.dumps({"out": str(args.out), "counts": counts}))
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    sys.exit(guard(main, "python -m apex.data.prepare"))
