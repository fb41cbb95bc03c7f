"""The identities every shipped config option gives: cell hash, and the store keys of prepared splits, negatives and
maps, computed from composed configs with the package-code hash stubbed (so an edit anywhere in apex/ does not move
them; the code's own part of a store key is tested in tests/test_store.py).

    python tests/identity_pins.py > tests/data/identities.json     (only when an identity changes on purpose)

tests/test_identities.py recomputes them and compares with the pinned file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("dataset", "model", "training", "eval", "erm", "sampler", "tracking", "store", "report", "arm", "experiment")
NEEDS = {"dataset=beir": ["dataset.path=/data/some-beir-folder"]}
FINGERPRINT = "F" * 64  # the splits' fingerprint, stubbed: the data's content is pinned by tests of apex.data
NEEDED = {"train": {"documents": 3, "ids_sha256": "a" * 64}}  # the needed set, stubbed likewise


def option_sets() -> list[list[str]]:
    """Every option of every group alone, and every ERM backend with every sampler."""
    sets = [[]]
    for group in GROUPS:
        sets += [[f"{group}={p.stem}"] for p in sorted((CONF / group).glob("*.yaml"))]
    erms = sorted(p.stem for p in (CONF / "erm").glob("*.yaml"))
    samplers = sorted(p.stem for p in (CONF / "sampler").glob("*.yaml"))
    sets += [[f"erm={e}", f"sampler={s}"] for e in erms for s in samplers]
    sets += [["arm=apex", "experiment=smoke"], ["experiment=paper_scale", "sampler=hard_only"]]
    return [[*s, *NEEDS.get(s[0], [])] if s else s for s in sets]


def identities(overrides: list[str]) -> dict[str, Any]:
    from apex.core.configs import cell_of, load_configs
    from apex.store import keys
    from apex.tracking.params import flatten

    cfg = compose(config_name="config", overrides=overrides)
    typed = load_configs(cfg)
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    model = typed.model if typed.sampler.name != "in_batch" else None
    negatives = keys.negatives_inputs(FINGERPRINT, model, typed.sampler, typed.job.seed)
    maps = keys.maps_inputs(FINGERPRINT, typed.erm, keys.mapped_splits(typed.eval.view), NEEDED)
    prepared = keys.prepared_inputs(splits_fingerprint_of(typed.dataset))
    return {
        "cell": cell_of(flat, typed),
        "negatives": keys.digest(negatives),
        "maps": keys.digest(maps),
        "prepared": keys.digest(prepared),
        "negatives_inputs": negatives,
        "maps_inputs": maps,
    }


_FINGERPRINTS: dict[str, str] = {}


def splits_fingerprint_of(dataset: Any) -> str:
    """The real splits' fingerprint for the bundled SQuAD set (seconds); the stub for a folder that is not here."""
    from apex.data import prepare_splits, splits_fingerprint

    if dataset.path is not None:
        return FINGERPRINT
    key = repr(dataset)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = splits_fingerprint(prepare_splits(dataset))
    return _FINGERPRINTS[key]


def compute() -> dict[str, Any]:
    import apex.core.configs  # noqa: F401  registers `<group>/base`
    from apex.store import keys

    keys.code_version = lambda stage: f"<code of {stage}>"  # stubbed: see the module docstring
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return {" ".join(s) or "(defaults)": identities(s) for s in option_sets()}


if __name__ == "__main__":
    json.dump(compute(), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
