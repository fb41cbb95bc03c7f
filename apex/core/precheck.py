"""The command line checked against the schemas before Hydra composes, launches or writes anything.

`python -m apex.run` (through `apex.core.cli.run_hydra`) calls `precheck(argv)` first:

1. every override's key must be a schema key or a config group (with or without ``+``): a typo such as
   ``trainig.lr=1e-3`` or ``+trainig.lr=1e-3`` fails with one line naming the key and the closest known key
   (``training.lr``), instead of Hydra's advice to add it with ``+`` (which then runs, silently, with the default);
2. a group option must exist (``erm=spcy`` → ``did you mean 'spacy'?``);
3. ``+key=value`` for a key the schema already has (``+resume=...``, the historical spelling) becomes ``key=value``;
4. the config is composed with Hydra's public Compose API, once per value of every swept key, and each composition
   is validated like a job's (every section's schema, conflicts between sections, secrets in preset files and in
   ``hydra.job.env_set``); the first composition's tracking server must answer as MLflow (apex.core.preflight).
   Hydra's output folder does not exist yet, so nothing is written for a refused config or a dead server.

Every failure is a `ConfigError` (exit status 2); the checks cost about a second, not a data load.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from apex.core.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"
# Hydra's own flags: those after which precheck steps aside (another config, or nothing is run), and those with a value.
_UNCHECKED_FLAGS = {
    "--help", "-h", "--hydra-help", "--version", "--info", "-i", "--shell-completion", "-sc", "--config-path", "-cp",
    "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p"}
MAX_COMPOSITIONS = 24  # a wide sweep is checked value by value, not combination by combination


def groups(conf: Path = CONF) -> dict[str, list[str]]:
    """Config group → its options (the YAML files of conf/<group>/), Hydra's own groups excluded."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(conf.iterdir())
        if d.is_dir() and d.name != "hydra"
    }


def schema_keys() -> tuple[set[str], set[str]]:
    """(every full key of the job config, prefixes under which any key is allowed: `dict[str, X]` fields)."""
    from apex.core.configs import LOCATIONS, REGISTRIES, SCHEMAS, JobConfig, PathsConfig

    keys: set[str] = set()
    open_prefixes: set[str] = set()
    sections: dict[str, type] = {"paths": PathsConfig, **SCHEMAS}
    for section, schema in sections.items():
        keys.add(section)
        _walk(schema, section, keys, open_prefixes)
    for section, registry in REGISTRIES.items():  # a key of any component (the composed section is checked as one)
        for name in registry.names():
            _walk(registry.get(name).config, section, keys, open_prefixes)
    for group, names in LOCATIONS.items():
        keys -= {f"{group}.{name}" for name in names}
    keys |= {f.name for f in dataclasses.fields(JobConfig)}
    return keys, open_prefixes


def _walk(schema: type, prefix: str, keys: set[str], open_prefixes: set[str]) -> None:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}.{f.name}"
        keys.add(key)
        nested = [h for h in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(h)]
        if nested:
            _walk(nested[0], key, keys, open_prefixes)
        elif typing.get_origin(hints[f.name]) is dict or hints[f.name] is Any:
            open_prefixes.add(key)


def suggestion(name: str, known: Sequence[str]) -> str:
    """ "; did you mean 'x'?" for the closest known name (difflib), else the known names of the same section."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    section = name.rpartition(".")[0]
    siblings = sorted(k for k in known if k.rpartition(".")[0] == section)
    return f"; known keys here: {siblings}" if siblings else ""


def check_key(key: str, added: bool, keys: set[str], open_prefixes: set[str]) -> None:
    """A config key an override sets (or adds with `+`) must exist in the schema."""
    if key in keys or any(key.startswith(f"{p}.") for p in open_prefixes):
        return
    how = " (adding it with '+' would change nothing: no component reads it)" if added else ""
    raise ConfigError(key, f"unknown key{how}{suggestion(key, sorted(keys))}", source="command line")


def check_option(group: str, option: str, options: dict[str, list[str]]) -> None:
    if option in ("null", "None") or option in options[group]:
        return
    hint = suggestion(option, options[group]).replace("known keys here", "options")
    hint = hint or f"; options: {options[group]}"
    raise ConfigError(group, f"no option '{option}' in conf/{group}/{hint}", source="command line")


def split_argv(argv: Sequence[str]) -> tuple[list[str], bool, bool]:
    """(the overrides, multirun?, checkable?): Hydra's flags are set aside; a help or other-config flag skips."""
    overrides: list[str] = []
    multirun, checkable, skip_next = False, True, False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif arg.split("=")[0] in _UNCHECKED_FLAGS:
            checkable = False
        elif arg in _FLAGS_WITH_VALUE:
            skip_next = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides, multirun, checkable


def precheck(argv: Sequence[str], conf: Path = CONF) -> list[str]:
    """The module docstring's checks; returns `argv` with `+key=` rewritten to `key=` for schema keys."""
    overrides, multirun, checkable = split_argv(argv)
    if not checkable:
        return list(argv)
    parsed, rewrite = check_overrides(overrides, conf)
    argv = [rewrite.get(a, a) for a in argv]
    lines = [rewrite.get(o.input_line, o.input_line) for o in parsed]
    for i, variant in enumerate(compositions(parsed, lines, multirun)):
        check_composed(compose(variant, conf), multirun, reachable=i == 0)
    return argv


def check_overrides(overrides: Sequence[str], conf: Path = CONF) -> tuple[list[Any], dict[str, str]]:
    """Steps 1-3 of the module docstring: (the parsed overrides, `+key=...` → `key=...` for schema keys)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys, open_prefixes = schema_keys()
    options = groups(conf)
    rewrite: dict[str, str] = {}
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.package is not None or override.is_delete():
            continue
        if key in options and not override.is_sweep_override() and "." not in key:
            check_option(key, str(override.value()), options)
        elif key in options and "." not in key:
            for option in override.sweep_string_iterator():
                check_option(key, option, options)
        else:
            check_key(key, override.is_add(), keys, open_prefixes)
            if override.is_add() and key in keys:
                rewrite[override.input_line] = override.input_line[1:]
    return parsed, rewrite


def compositions(parsed: list[Any], lines: list[str], multirun: bool) -> Iterator[list[str]]:
    """The overrides with each sweep replaced by its first value, then once per other value of each swept key."""
    first = [
        f"{line.split('=', 1)[0]}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else line
        for o, line in zip(parsed, lines, strict=True)
    ]
    yield first
    if not multirun:
        return
    count = 1
    for i, override in enumerate(parsed):
        if not override.is_sweep_override():
            continue
        for value in list(override.sweep_string_iterator())[1:]:
            if count >= MAX_COMPOSITIONS:
                return
            count += 1
            yield [*first[:i], f"{lines[i].split('=', 1)[0]}={value}", *first[i + 1 :]]


def compose(overrides: list[str], conf: Path = CONF) -> DictConfig:
    """The job config Hydra would compose for `overrides` (Hydra's section included), composed in memory."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import apex.core.configs  # noqa: F401  registers `<group>/base`

    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="apex"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)


def check_composed(cfg: DictConfig, multirun: bool = False, reachable: bool = False) -> None:
    """One composed config validated as a job will be, plus the keys and secrets only presets can add; with
    `reachable`, the tracking server too (it answers, is MLflow, takes the credentials)."""
    from apex.core.configs import load_configs
    from apex.core.preflight import check_tracking
    from apex.core.secrets import check_env_set, reject_secrets_in_config
    from apex.tracking.params import flatten

    hydra_node = cfg.get("hydra")
    check_env_set(OmegaConf.to_container(hydra_node.job.env_set, resolve=False) if hydra_node else {})
    if multirun and hydra_node is not None:
        check_swept_params(hydra_node)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    keys, _ = schema_keys()
    for name in job:
        check_key(str(name), False, {k for k in keys if "." not in k}, set())
    with open_dict(job):
        literal = flatten(OmegaConf.to_container(job, resolve=False))
        reject_secrets_in_config(flatten(OmegaConf.to_container(job, resolve=True)), literal=literal)
    tracking = load_configs(job).tracking
    check_tracking(tracking.uri, tracking.experiment, tracking.artifact_root, reachable=reachable)


def check_swept_params(hydra_node: DictConfig) -> None:
    """A preset's `hydra.sweeper.params` names keys too: each must exist (their values are checked per job)."""
    params = OmegaConf.to_container(hydra_node.get("sweeper", {}), resolve=False).get("params") or {}
    keys, open_prefixes = schema_keys()
    options = groups()
    for key in params:
        if str(key) not in options:
            check_key(str(key), False, keys, open_prefixes)
