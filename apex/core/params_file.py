"""`params.yaml`, the DVC stages' view of the config, generated from conf/ (DVC never composes Hydra configs).

    python -m apex.core.params_file                      regenerate from conf/ with the overrides params.yaml records
    python -m apex.core.params_file arm=apex experiment=smoke   ... with new overrides (the pinned configuration)
    python -m apex.core.params_file --check              exit 1 (and show the difference) if params.yaml is stale

params.yaml holds the whole composed job config, resolved (no `hydra` section), plus `overrides`: the
command-line overrides it was composed with. `apex.run` with the same overrides composes the same values, so the
DVC stages and the runs address the same outputs in the data store. tests/test_params_file.py fails when conf/
and params.yaml disagree.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from apex.core.errors import ConfigError, InputError

CONF = Path(__file__).resolve().parents[2] / "conf"
PARAMS = Path("params.yaml")
HEADER = (
    "# GENERATED from conf/ by `python -m apex.core.params_file` (with the overrides below): do not edit by hand.\n"
    "# The DVC stages read it; `python -m apex.run <overrides>` composes the same values.\n"
    "# Pin another configuration: python -m apex.core.params_file arm=apex experiment=... && dvc repro\n"
)


def read_section(path: Path, section: str) -> Any:
    """The `section` of a YAML params file as plain Python values; a clear InputError naming the file otherwise."""
    params = read_params_file(path)
    if section not in params:
        raise InputError(f"has no '{section}' section", file=path, record=section)
    return params[section]


def read_params_file(path: Path) -> dict[str, Any]:
    """The whole params file as plain Python values."""
    if not path.is_file():
        raise InputError("file does not exist", file=path)
    try:
        params = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # OmegaConf wraps YAML errors in several types; all mean "unreadable params file"
        raise InputError(f"is not readable YAML ({err})", file=path) from err
    if not isinstance(params, dict):
        raise InputError("is not a mapping", file=path)
    return params


def compose_params(overrides: list[str], conf: Path | None = None) -> dict[str, Any]:
    """The composed job config for `overrides`, resolved, without Hydra's own section."""
    from hydra import compose, initialize_config_dir

    import apex.core.configs  # noqa: F401  registers `<group>/base`

    with initialize_config_dir(config_dir=str((conf or CONF).resolve()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("hydra", None)
    refuse_credentials(values)
    return {"overrides": list(overrides), **values}


def refuse_credentials(values: dict[str, Any]) -> None:
    """params.yaml is committed: a value holding a credential (a URL password from ${oc.env:...}) must not reach it."""
    from apex.core.secrets import holds_secret
    from apex.tracking.params import flatten

    for key, value in flatten(values).items():
        if isinstance(value, str) and holds_secret(value):
            raise ConfigError(key, "holds a credential; params.yaml is committed with the code, so it cannot hold one")


def render(params: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apex.core.params_file", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: those params.yaml records)")
    parser.add_argument("--params", type=Path, default=PARAMS)
    parser.add_argument("--check", action="store_true", help="fail if the file differs from a fresh composition")
    args = parser.parse_args(argv)
    overrides = args.overrides
    if not overrides and args.params.is_file():
        overrides = list(read_params_file(args.params).get("overrides") or [])
    from apex.core.precheck import check_overrides  # unknown keys and options name the close known one

    _, rewrite = check_overrides(overrides)
    overrides = [rewrite.get(o, o) for o in overrides]
    expected = render(compose_params(overrides))
    if args.check:
        current = args.params.read_text("utf-8") if args.params.is_file() else ""
        if current == expected:
            print(f"{args.params} matches conf/ (overrides: {' '.join(overrides) or 'none'})")
            return 0
        diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), str(args.params), "conf/", lineterm="")
        print("\n".join(diff), file=sys.stderr)
        print(f"{args.params} is stale: run `python -m apex.core.params_file` to regenerate it", file=sys.stderr)
        return 1
    args.params.write_text(expected, "utf-8")
    print(f"wrote {args.params} (overrides: {' '.join(overrides) or 'none'})")
    return 0


if __name__ == "__main__":
    from apex.core.cli import guard, refuse_secret_overrides  # one line per failure; no credential written or echoed

    refuse_secret_overrides(sys.argv[1:], "python -m apex.core.params_file")
    sys.exit(guard(main, "python -m apex.core.params_file"))
