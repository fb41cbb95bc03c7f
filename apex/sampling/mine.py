"""DVC `negatives` stage: mine negatives for the training split, in the plain view, before the maps.

    python -m apex.sampling.mine --params params.yaml --splits data/prepared --out data/negatives

Reads `sampler` (SamplerConfig), `model` (apex.model.ModelConfig), `seed` and `paths.cache_dir` from params.yaml.
The base model embeds the documents as they are (view `plain`): the negatives say which documents the `erm` stage
maps (apex.erm.needed), so they come first. The output is written by `write_negatives` with `inputs.json`, as a
run writes it, so a run with the same config finds these negatives pinned. The base-embedding cache lives under
<paths.cache_dir>/base_embeddings, outside --out, because DVC deletes a stage's outputs before it re-runs it.
Progress bars on by default (encoding the corpus takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from apex.model.config import ModelConfig
from apex.sampling.config import SamplerConfig
from apex.sampling.mining import mine_negatives
from apex.sampling.protocol import EncoderProtocol

log = logging.getLogger("apex.sampling")

EncoderFactory = Callable[[ModelConfig], EncoderProtocol]


def load_model_encoder(cfg: ModelConfig) -> EncoderProtocol:
    from apex.model import load_encoder  # imported here: in_batch needs no model at all

    return load_encoder(cfg)


def main(argv: Sequence[str] | None = None, encoder_factory: EncoderFactory = load_model_encoder) -> int:
    from apex.core.params_file import read_params
    from apex.data import load_splits, splits_fingerprint
    from apex.store.keys import negatives_inputs
    from apex.store.outputs import write_negatives
    from apex.store.stage_cli import cache_dir, read_config
    from apex.store.store import build_into

    parser = argparse.ArgumentParser(prog="python -m apex.sampling.mine", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True, help="folder written by apex.data.save_splits")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sampler = read_config(args.params, SamplerConfig, "sampler")
    seed = int(read_params(args.params).get("seed", 0))
    splits = load_splits(args.splits)
    dataset = splits[args.split]
    model = read_config(args.params, ModelConfig, "model") if sampler.name != "in_batch" else None
    inputs: dict[str, Any] = negatives_inputs(splits_fingerprint(splits), model, sampler, seed)

    def build(out: Path) -> dict[str, Any]:
        encoder = None if model is None else encoder_factory(model)
        result = mine_negatives(
            dataset.queries,
            dataset.corpus,
            dataset.qrels,
            encoder,
            sampler,
            cache_dir=cache_dir(args.params) / "base_embeddings",
            view="plain",
            seed=seed,
            progress=not args.no_progress,
        )
        return write_negatives(result, out)

    volatile = build_into(args.out, inputs, build)
    print(json.dumps({"out": str(args.out), "view": "plain", **volatile}, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    raise SystemExit(guard(main, "python -m apex.sampling.mine"))
