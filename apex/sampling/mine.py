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

from apex.model.config import ModelConfig
from apex.model.protocol import TextEncoder
from apex.sampling.config import SamplerConfig

log = logging.getLogger("apex.sampling")

EncoderFactory = Callable[[ModelConfig], TextEncoder]


def load_model_encoder(cfg: ModelConfig) -> TextEncoder:
    from apex.model import load_encoder  # imported here: in_batch needs no model at all

    return load_encoder(cfg)


def main(argv: Sequence[str] | None = None, encoder_factory: EncoderFactory = load_model_encoder) -> int:
    from apex.core.params_file import read_params_file
    from apex.data import load_splits
    from apex.sampling.registry import SAMPLERS
    from apex.store.stage_cli import cache_dir, read_config
    from apex.store.stages import negatives_work
    from apex.store.store import build_into

    parser = argparse.ArgumentParser(prog="python -m apex.sampling.mine", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True, help="folder written by apex.data.save_splits")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sampler = read_config(args.params, SamplerConfig, "sampler")
    seed = int(read_params_file(args.params).get("seed", 0))
    model = read_config(args.params, ModelConfig, "model")
    reads_vectors = SAMPLERS.get(sampler.name).needs_embeddings
    work = negatives_work(load_splits(args.splits), model, sampler, seed,
                          lambda: encoder_factory(model) if reads_vectors else None,
                          cache_dir(args.params) / "base_embeddings", not args.no_progress)  # fmt: skip
    volatile = build_into(args.out, work.inputs, work.build)
    print(json.dumps({"out": str(args.out), "view": "plain", **volatile}, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard  # one line per expected failure, documented exit statuses

    raise SystemExit(guard(main, "python -m apex.sampling.mine"))
