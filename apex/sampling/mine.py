"""DVC stage: mine negatives for the training split.

    python -m apex.sampling.mine --params params.yaml --splits data/prepared [--maps data/erm] --out data/negatives

Reads `sampler` (SamplerConfig), `model` (apex.model.ModelConfig), `seed` and `cache_dir` from params.yaml; the
base-embedding cache lives under <cache_dir>/base_embeddings, outside --out, because DVC deletes a stage's outputs
before it re-runs it. Thin on purpose: all behaviour is in `mine_negatives`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from apex.errors import InputError
from apex.sampling.config import SamplerConfig
from apex.sampling.mining import mine_negatives
from apex.sampling.outputs import write_outputs
from apex.sampling.protocol import EncoderProtocol

log = logging.getLogger("apex.sampling")

EncoderFactory = Callable[[Mapping[str, Any]], EncoderProtocol]


def load_model_encoder(section: Mapping[str, Any]) -> EncoderProtocol:
    from apex.model import ModelConfig, load_encoder  # imported here: in_batch needs no model at all

    return load_encoder(ModelConfig.from_cfg(section))


def map_view(corpus: pd.DataFrame, maps_dir: Path) -> pd.DataFrame:
    """Documents with their rendered map as text where the map is `ok`; the plain text elsewhere (counted).

    Reads the `erm` stage's Parquet maps and applies the ERM stage's own view rule (`apex.erm.map_view`).
    """
    from apex.erm import map_view as erm_map_view

    files = sorted(maps_dir.glob("*.parquet"))
    maps_files = [f for f in files if f.stem == "maps"] or files
    if not maps_files:
        raise InputError("holds no .parquet maps table", file=maps_dir)
    maps = pd.concat([pd.read_parquet(f, columns=["doc_id", "text", "status"]) for f in maps_files], ignore_index=True)
    return erm_map_view(corpus, maps)


def main(argv: Sequence[str] | None = None, encoder_factory: EncoderFactory = load_model_encoder) -> int:
    parser = argparse.ArgumentParser(prog="python -m apex.sampling.mine", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True, help="folder written by apex.data.save_splits")
    parser.add_argument("--maps", type=Path, default=None, help="folder of maps Parquet: embed the map view")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    params = yaml.safe_load(args.params.read_text("utf-8")) or {}
    cfg = SamplerConfig.from_cfg(params.get("sampler", {}))
    from apex.data import load_splits  # the data stage's reader: validates and checks fingerprints

    dataset = load_splits(args.splits)[args.split]
    documents = dataset.corpus if args.maps is None else map_view(dataset.corpus, args.maps)
    encoder = None if cfg.name == "in_batch" else encoder_factory(params.get("model", {}))
    result = mine_negatives(
        dataset.queries,
        documents,
        dataset.qrels,
        encoder,
        cfg,
        cache_dir=Path(params.get("cache_dir", "experiments/cache")) / "base_embeddings",
        view="plain" if args.maps is None else "map",
        seed=int(params.get("seed", 0)),
        progress=False,
    )
    for path in write_outputs(result, args.out):
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    from apex.cli import guard  # one line per expected failure, documented exit statuses

    raise SystemExit(guard(main, "python -m apex.sampling.mine"))
