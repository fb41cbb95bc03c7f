"""One registry per component kind: a config group whose `name:` selects behaviour (sampler, erm, ...).

A component is one record: its name, its own config dataclass (only its keys, with their defaults), its
implementation, and the facts others need (`operational`: keys that change how fast an output is made, never what
it holds, so no identity counts them). The record is registered by the component's own module, which lives in the
kind's package (`apex/sampling/samplers/`, `apex/erm/backends/`): the registry imports every module there the first
time it is asked, so a new component is that module plus its YAML (`conf/<group>/<name>.yaml`, starting from the
Hydra node `base_<name>` that registering stores: the config's defaults). See docs/extending.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from apex.core.errors import ConfigError
from apex.core.schema import as_mapping, defaults_of, plain, read_dataclass


class Record(Protocol):
    name: str
    config: type
    operational: tuple[str, ...]


R = TypeVar("R", bound=Record)


class Registry(Generic[R]):
    """`group`'s components by name; `package` holds the modules that register them."""

    def __init__(self, group: str, package: str) -> None:
        self.group, self.package = group, package
        self._records: dict[str, R] = {}
        self._discovered = False

    def register(self, record: R) -> R:
        """Add `record` and store its defaults as the Hydra node `<group>/base_<name>`; returns it."""
        from hydra.core.config_store import ConfigStore

        known = self._records.get(record.name)
        if known is not None and known is not record and known.config is not record.config:
            raise ValueError(f"{self.group} {record.name!r} is registered twice")
        for key in record.operational:
            if key not in {f.name for f in dataclasses.fields(record.config)}:
                raise ValueError(f"{self.group} {record.name!r}: operational key {key!r} is not a config key")
        self._records[record.name] = record
        node = {**defaults_of(record.config), "name": record.name}
        ConfigStore.instance().store(group=self.group, name=f"base_{record.name}", node=node)
        return record

    def discover(self) -> None:
        """Import every module of the package once (each registers its components)."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> tuple[str, ...]:
        self.discover()
        return tuple(sorted(self._records))

    def get(self, name: str) -> R:
        """The record of `name`; an unknown name is a ConfigError naming `<group>.name` and the known names."""
        self.discover()
        if name not in self._records:
            raise ConfigError(f"{self.group}.name", f"{name!r} is not one of {list(self.names())}")
        return self._records[name]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._records

    def read(self, section: Any, key: str, default: str) -> Any:
        """The section as the selected component's config (unknown keys and bad values: one ConfigError)."""
        values = as_mapping(section, key)
        name = values.get("name", default)
        if not isinstance(name, str):
            raise ConfigError(f"{key}.name", f"expected a string, got {name!r}")
        record = self.get(name)
        prepare = getattr(record.config, "prepare", None)
        return read_dataclass(record.config, key, prepare(values, key) if prepare else values)

    def identity(self, cfg: Any) -> dict[str, Any]:
        """The config's keys that determine an output: all but the component's operational keys."""
        skip = set(self.get(cfg.name).operational)
        return {f.name: identity_value(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in skip}


def identity_value(value: Any) -> Any:
    """A config value as JSON-ready data (a nested config's own `as_dict` when it has one: band bounds as ints)."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {k: identity_value(v) for k, v in value.items()}
    return plain(value)
