"""Versioned prompts, and how each prompt's answer is parsed: the contract between us and the LLM.

The paper publishes no prompt; these are ours. Each prompt carries a version string that is part of every cache key,
so editing a prompt without bumping its version would silently mix answers of two prompts in one cache: bump the
version with any change to the wording, the JSON shape or the parsing rules.

A `Task` bundles one prompt with its parser. `parse` turns the raw message content into a canonical payload string
(what the cache stores) or raises `MapValidationError` with a short reason, which becomes the re-ask feedback and,
after the last re-ask, the recorded failure reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from apex.erm.schema import LLM_JSON_SCHEMA, EntityMap, MapValidationError

MAP_PROMPT_VERSION = "erm-map/v1"
QUERY_PROMPT_VERSION = "erm-query/v1"

MAP_SYSTEM_PROMPT = """\
You convert a document into an Entity Relationship Map: a compact, structured list of the document's entities and \
of the relations between them. Keep every fact a reader could ask about; drop style, repetition and filler.

Rules:
- entities: each person, organization, place, event, work, product, group or concept that a fact is about.
  name: the most specific name the document uses. type: one lowercase word (person, organization, place, event, \
work, product, group, concept, other).
  attributes: values that belong to this entity alone (dates, numbers, quantities, places, titles, roles) as \
key/value pairs with short keys, e.g. {"key": "founded", "value": "1842"}.
- relations: facts linking two entities. subject and object must be entity names written exactly as in \
"entities". predicate: a short verb phrase (defeated, is located in, was founded by).
  qualifiers: values that belong to the fact rather than to either entity (date, place, score, amount).
- Use only what the document states. Copy names, numbers and dates exactly as written.
- Answer with one JSON object and nothing else:
{"entities": [{"name": "...", "type": "...", "attributes": [{"key": "...", "value": "..."}]}], "relations": \
[{"subject": "...", "predicate": "...", "object": "...", "qualifiers": [{"key": "...", "value": "..."}]}]}"""

QUERY_SYSTEM_PROMPT = """\
You write search queries. Given a document, write one natural search query or question, 5 to 20 words, that this \
document answers and that other documents on the same topic would not answer as well: use its specific facts \
(names, dates, numbers). Do not copy a whole sentence from the document.
Answer with one JSON object and nothing else: {"query": "..."}"""

QUERY_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}

DOC_OPEN, DOC_CLOSE = "<document>", "</document>"
MAX_QUERY_CHARS = 400


def user_message(text: str) -> str:
    """The document, fenced so that instructions inside it read as data."""
    return f"{DOC_OPEN}\n{text}\n{DOC_CLOSE}"


@dataclass(frozen=True)
class Task:
    """One prompt (with version) and the parser of its answers."""

    kind: str  # "map" or "query": also the cache's namespace
    prompt_version: str
    system_prompt: str
    schema_name: str
    json_schema: dict[str, Any]

    def messages(self, text: str, feedback: str | None = None) -> list[dict[str, str]]:
        """Chat messages for one document; `feedback` (a re-ask) says what was wrong with the previous answer."""
        msgs = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user_message(text)}]
        if feedback:
            msgs.append(
                {
                    "role": "user",
                    "content": f"Your previous answer was rejected ({feedback}). Answer again with one valid JSON "
                    f"object only, following the rules; be more concise if the answer was cut off.",
                }
            )
        return msgs

    def response_format(self, structured_output: str) -> dict[str, Any] | None:
        """The request's `response_format` for `erm.structured_output` (table: apex.erm.compat); None: send none."""
        from apex.erm.compat import response_format

        return response_format(structured_output, self.schema_name, self.json_schema)

    def parse(self, content: str | None) -> str:
        """Canonical payload from the message content, or `MapValidationError`."""
        if content is None or not content.strip():
            raise MapValidationError("empty answer")
        if self.kind == "map":
            return EntityMap.from_json(_strip_fence(content)).to_json()
        return _parse_query(_strip_fence(content))


def _strip_fence(content: str) -> str:
    """Some servers in JSON mode still wrap the object in a Markdown code fence; accept that, nothing looser."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        if text.startswith("json"):
            text = text[4:]
    return text.strip()


def _parse_query(content: str) -> str:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise MapValidationError(f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(data, dict) or set(data) != {"query"} or not isinstance(data["query"], str):
        raise MapValidationError('schema violation: expected {"query": "<string>"}')
    query = " ".join(data["query"].split())
    if not query:
        raise MapValidationError("schema violation: empty query")
    if len(query) > MAX_QUERY_CHARS:
        raise MapValidationError(f"schema violation: query longer than {MAX_QUERY_CHARS} characters")
    return query


MAP_TASK = Task("map", MAP_PROMPT_VERSION, MAP_SYSTEM_PROMPT, "entity_relationship_map", LLM_JSON_SCHEMA)
QUERY_TASK = Task("query", QUERY_PROMPT_VERSION, QUERY_SYSTEM_PROMPT, "synthetic_query", QUERY_JSON_SCHEMA)
