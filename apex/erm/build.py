"""DVC `erm` stage: `python -m apex.erm.build --params params.yaml --splits data/prepared --out data/erm`.

Reads the `erm:` section of a plain YAML params file (the keys of `ErmConfig`), loads the prepared splits
(`apex.data.load_splits`), builds the maps of every split's corpus (and of its queries when
`apply_to: documents_and_queries`), and writes

    <out>/<split>/maps.parquet            doc_id, map_json, text, status       (one row per corpus document)
    <out>/<split>/failures.parquet        doc_id, reason, attempts
    <out>/<split>/usage.parquet           per-document tokens, model, system_fingerprint, cached
    <out>/<split>/query_maps.parquet      (apply_to: documents_and_queries; doc_id holds the query_id)
    <out>/stats.json                      per split: the stats of `build_maps`

The answer cache lives in `--cache-dir` (default experiments/cache/erm), outside the DVC output, so `dvc repro`
after a change elsewhere re-reads answers instead of paying for them again. `erm: {name: none}` writes empty tables.
Exit status: 0 ok, 2 bad input or config, 3 backend unavailable (no key, server down).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from apex.erm.client import ErmBackendError
from apex.erm.config import ErmConfig
from apex.erm.pipeline import FAILURE_COLUMNS, MAPS_COLUMNS, USAGE_COLUMNS, build_maps
from apex.errors import InputError
from apex.params_file import read_section

DEFAULT_CACHE_DIR = Path("experiments/cache/erm")


def read_params(path: Path, section: str = "erm") -> ErmConfig:
    return ErmConfig.from_cfg(read_section(path, section))


def _load_corpora(splits_dir: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """split → (corpus, queries) via `apex.data.load_splits` (validated against the manifest's fingerprints)."""
    from apex.data import load_splits

    return {name: (ds.corpus, ds.queries) for name, ds in load_splits(splits_dir).items()}


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=str) for c in columns})


def build(cfg: ErmConfig, splits_dir: Path, out: Path, cache_dir: Path, progress: bool) -> dict[str, dict]:
    corpora = _load_corpora(splits_dir)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    all_stats: dict[str, dict] = {}
    for split, (corpus, queries) in corpora.items():
        (tmp / split).mkdir(parents=True)
        tables: dict[str, pd.DataFrame]
        if cfg.name == "none":
            tables = {"maps": _empty(MAPS_COLUMNS), "failures": _empty(FAILURE_COLUMNS), "usage": _empty(USAGE_COLUMNS)}
            all_stats[split] = {"skipped": 1.0}
        else:
            items = pd.DataFrame({"id": corpus["doc_id"], "text": corpus["text"]})
            result = build_maps(items, cfg, cache_dir, progress=progress)
            tables = {"maps": result.maps, "failures": result.failures, "usage": result.usage}
            all_stats[split] = dict(result.stats)
            if cfg.apply_to == "documents_and_queries":
                q_items = pd.DataFrame({"id": queries["query_id"], "text": queries["text"]})
                q_result = build_maps(q_items, cfg, cache_dir, progress=progress)
                tables["query_maps"] = q_result.maps
                all_stats[split].update({f"query_{k}": v for k, v in q_result.stats.items()})
        for name, table in tables.items():
            table.to_parquet(tmp / split / f"{name}.parquet", index=False)
    (tmp / "stats.json").write_text(json.dumps(all_stats, indent=2, sort_keys=True) + "\n", "utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return all_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apex.erm.build", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="YAML file with an erm: section")
    parser.add_argument("--splits", type=Path, default=Path("data/prepared"), help="folder written by apex.data")
    parser.add_argument("--out", type=Path, default=Path("data/erm"), help="output folder (a DVC output)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="answer cache (not a DVC output)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = read_params(args.params)
        stats = build(cfg, args.splits, args.out, args.cache_dir, progress=not args.no_progress)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ErmBackendError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    print(json.dumps({"out": str(args.out), "stats": stats}, sort_keys=True))
    return 0


if __name__ == "__main__":
    from apex.cli import guard  # one line per expected failure, documented exit statuses

    sys.exit(guard(main, "python -m apex.erm.build"))
