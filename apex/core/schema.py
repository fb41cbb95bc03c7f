"""One reader for every config group: a frozen dataclass is the group's schema (keys, types, defaults).

`read_dataclass(cls, "training", mapping)` rejects unknown keys, checks each value against the field's type hint
(int, float, bool, str, Literal, X | None, unions of scalars, tuple[X, ...], dict[str, X], nested dataclasses),
builds the dataclass and calls its `validate()` for the rules that types cannot say. Every failure is one
`ConfigError` naming the full key (`sampler.hard.low`). Defaults live only in the dataclasses; `defaults_of`
turns them into the base node each Hydra group composes from (see apex/core/configs.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping
from os import PathLike
from typing import Any, Literal, TypeVar, Union

from apex.core.errors import ConfigError

T = TypeVar("T")


def as_mapping(section: Any, key: str, source: str | PathLike[str] = "config") -> dict[str, Any]:
    """A config section (dict, OmegaConf DictConfig, None) as a plain dict with string keys."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(key, f"expected a mapping, got {type(section).__name__}", source=source)
    return {str(k): v for k, v in section.items()}


def read_dataclass(cls: type[T], key: str, section: Any, source: str | PathLike[str] = "config") -> T:
    """Build and validate `cls` from a mapping; missing keys take the dataclass defaults."""
    values = as_mapping(section, key, source)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean '{_join(key, close[0])}'?" if close else f"known keys: {sorted(known)}"
            raise ConfigError(_join(key, name), f"unknown key; {hint}", source=source)
    typed = {name: coerce(value, hints[name], _join(key, name), source) for name, value in values.items()}
    try:
        obj = cls(**typed)
    except TypeError as err:  # a required field (no default) is missing
        raise ConfigError(key, f"incomplete: {err}", source=source) from err
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            # A schema used under several keys (sampler.hard, sampler.soft) takes the key it was read under.
            validate(key) if inspect.signature(validate).parameters else validate()
        except ConfigError as err:
            if str(source) == err.file:
                raise
            raise ConfigError(err.key, err.reason, source=source) from None
    return obj


def coerce(value: Any, hint: Any, key: str, source: str | PathLike[str] = "config") -> Any:
    """`value` checked against the type `hint` (ints are accepted for floats, never bools for numbers)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(key, f"expected {expected}, got {value!r}", source=source)

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ConfigError(key, f"{value!r} is not one of {list(args)}", source=source)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, key, source)
            except ConfigError:
                continue
        raise fail(" or ".join(_name(a) for a in args))
    if origin is tuple:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, typing.Sequence | typing.Iterable):
            raise fail("a list")
        item = args[0] if args else Any
        return tuple(coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        values = as_mapping(value, key, source)
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(v, item, f"{key}.{k}", source) for k, v in values.items()}
    if dataclasses.is_dataclass(hint):
        return read_dataclass(hint, key, value, source)
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        if not math.isfinite(value):  # nan passes every `<= 0` check, inf every `>= x`: refuse both here, by key
            raise fail("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    raise ConfigError(key, f"the schema has an unsupported type {hint!r}", source=source)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _name(hint: Any) -> str:
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def defaults_of(cls: type) -> dict[str, Any]:
    """The dataclass defaults as plain YAML values (tuples → lists, nested dataclasses → dicts, no default → ???)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            out[f.name] = "???"  # OmegaConf's "mandatory": a preset must set it
            continue
        out[f.name] = plain(value)
    return out


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value
