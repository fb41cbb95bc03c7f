"""The Entity Relationship Map (ERM): a validated schema for a document's entities and the relations between them.

A map is two lists. *Entities* carry a name, a coarse type (PERSON, ORGANIZATION, PLACE, EVENT, ...) and attributes,
the dates, quantities, places and other values that belong to that entity alone. *Relations* are (subject,
predicate, object) triples whose subject and object name entities of the same map, with optional qualifiers (when,
where, how much) that belong to the fact rather than to either entity.

Attributes and qualifiers are lists of key/value pairs, not free dictionaries: OpenAI's strict structured output
admits no open-ended objects, and a list keeps the author's order, which the renderer preserves.

The same pydantic models validate an LLM's answer, the offline spaCy extractor's output and a map read back from the
cache, so all three backends meet the same rules. `LLM_JSON_SCHEMA` is the strict-mode JSON schema sent to servers
that support `response_format={"type": "json_schema"}`; it describes the same shape, and pydantic checks what JSON
Schema cannot express (subjects and objects must name entities; entity names are unique).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = "erm-schema/v1"

# Caps keep a runaway answer from becoming a "map" longer than the document it summarises.
MAX_NAME_CHARS = 200
MAX_VALUE_CHARS = 300
MAX_ENTITIES = 200
MAX_RELATIONS = 400


def _clean(value: str) -> str:
    """Collapse whitespace runs so that 'Denver  Broncos' and 'Denver Broncos' are one name."""
    return " ".join(value.split())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attribute(_Strict):
    """One key/value pair, e.g. ``date: February 7, 2016`` or ``score: 24–10``."""

    key: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    value: str = Field(min_length=1, max_length=MAX_VALUE_CHARS)

    @field_validator("key", "value", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean(v) if isinstance(v, str) else v


class Entity(_Strict):
    """A named thing in the document: a person, organisation, place, event, work, concept."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    type: str = Field(min_length=1, max_length=64)
    attributes: tuple[Attribute, ...] = ()

    @field_validator("name", "type", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean(v) if isinstance(v, str) else v


class Relation(_Strict):
    """A fact linking two entities of the map: ``subject --predicate--> object`` plus qualifiers."""

    subject: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    predicate: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    object: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    qualifiers: tuple[Attribute, ...] = ()

    @field_validator("subject", "predicate", "object", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean(v) if isinstance(v, str) else v


class EntityMap(_Strict):
    """A document's map. Invariants: entity names unique; every relation endpoint is an entity of the map."""

    entities: tuple[Entity, ...] = Field(default=(), max_length=MAX_ENTITIES)
    relations: tuple[Relation, ...] = Field(default=(), max_length=MAX_RELATIONS)

    @model_validator(mode="after")
    def _check_references(self) -> EntityMap:
        names: set[str] = set()
        for i, entity in enumerate(self.entities):
            if entity.name in names:
                raise ValueError(f"entities[{i}]: duplicate entity name {entity.name!r}")
            names.add(entity.name)
        for i, rel in enumerate(self.relations):
            for end in ("subject", "object"):
                if getattr(rel, end) not in names:
                    raise ValueError(f"relations[{i}].{end}: {getattr(rel, end)!r} is not an entity of this map")
        return self

    def to_json(self) -> str:
        """Canonical JSON: fixed key order, no whitespace, UTF-8 kept; `from_json(to_json(m)) == m`."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EntityMap:
        """Parse and validate; raises `MapValidationError` with a short reason on any problem."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MapValidationError(f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: Any) -> EntityMap:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            msg = first["msg"].removeprefix("Value error, ")  # our own invariant checks name their location
            where = ".".join(str(p) for p in first["loc"])
            raise MapValidationError(
                f"schema violation at {where}: {msg}" if where else f"schema violation: {msg}"
            ) from exc


class MapValidationError(ValueError):
    """An answer that is not a valid map; the message is short enough to store and to feed back to the LLM."""


def _pairs_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
            "required": ["key", "value"],
            "additionalProperties": False,
        },
    }


# Strict-mode JSON schema (every property required, no additional properties), as OpenAI's structured output needs.
LLM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string"},
                    "attributes": _pairs_schema(),
                },
                "required": ["name", "type", "attributes"],
                "additionalProperties": False,
            },
        },
        "relations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "subject": {"type": "string"},
                    "predicate": {"type": "string"},
                    "object": {"type": "string"},
                    "qualifiers": _pairs_schema(),
                },
                "required": ["subject", "predicate", "object", "qualifiers"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["entities", "relations"],
    "additionalProperties": False,
}
