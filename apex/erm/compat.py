"""What apex sends to each OpenAI-compatible server, and the fallback when a server rejects a field.

`erm.structured_output` picks the `response_format` of every chat request:

- `json_schema`: `{"type": "json_schema", "json_schema": {"name", "strict": true, "schema"}}`; decoding constrained
  by OpenAI, vLLM, llama.cpp's `llama-server`, Ollama >= 0.5;
- `json_object_schema`: `{"type": "json_object", "schema": {...}}`; llama-cpp-python's server (a grammar from the
  schema) and `llama-server`;
- `json_object`: `{"type": "json_object"}` (JSON mode: any JSON object); our validator checks the shape;
- `none`: no `response_format`; the prompt and our validator alone.

Every request also carries `model`, `messages`, `temperature`, `seed` and `max_tokens`. A server that rejects a field
answers HTTP 400 or 422 naming it (llama-cpp-python: 422 "Input should be 'text' or 'json_object'" for
`json_schema`). `Negotiator` then steps down once, for the rest of the run, with one warning line:
`json_schema` → `json_object_schema` → `json_object` → `none`; a rejected `seed` is dropped. The validate-and-re-ask
loop (`apex.erm.llm`) stays in force at every level, so a weaker level costs re-asks, never invalid maps.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import openai

from apex.erm.client import scrub

log = logging.getLogger("apex.erm")

LEVELS = ("json_schema", "json_object_schema", "json_object", "none")


def response_format(level: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The `response_format` value of one level (table in the module docstring); None: send none."""
    if level == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if level == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if level == "json_object":
        return {"type": "json_object"}
    return None


def _names(exc: openai.APIStatusError, *fields: str) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return any(f in text for f in fields)


class Negotiator:
    """What this server accepts, learnt from its rejections; shared by every worker thread of one run."""

    def __init__(self, level: str, where: str = "the server") -> None:
        self.level = level
        self.send_seed = True
        self.rejections = 0  # requests the server refused for a field (sent again without it)
        self._where = where
        self._lock = threading.Lock()

    def adapt(self, body: dict[str, Any], name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """`body` as this server takes it: the current response_format level, and seed only if accepted."""
        out = {k: v for k, v in body.items() if k not in ("response_format", "seed")}
        with self._lock:
            fmt = response_format(self.level, name, schema)
            if fmt is not None:
                out["response_format"] = fmt
            if self.send_seed and "seed" in body:
                out["seed"] = body["seed"]
        return out

    def step_down(self, exc: openai.APIStatusError, sent: dict[str, Any]) -> bool:
        """True when `exc` (a 400/422 to the request `sent`) names a field we can drop or weaken: send again."""
        if exc.status_code not in (400, 422):
            return False
        with self._lock:
            self.rejections += 1
            sent_level = _level_of(sent.get("response_format"))
            if sent_level != self.level:  # another thread stepped down already: just send again
                return True
            weaker = self.level != LEVELS[-1]
            named = _names(exc, "response_format", "json_schema", "json_object", "schema")
            if weaker and "response_format" in sent and named:
                old, self.level = self.level, LEVELS[LEVELS.index(self.level) + 1]
                log.warning(
                    "erm: %s rejected response_format %s (HTTP %d: %s); falling back to %s for the rest of this run",
                    scrub(self._where), old, exc.status_code, _short(exc), self.level,
                )  # fmt: skip
                return True
            if self.send_seed and "seed" in sent and _names(exc, "seed"):
                self.send_seed = False
                log.warning("erm: %s rejected the field seed (HTTP %d: %s); sending no seed for the rest of this run",
                            scrub(self._where), exc.status_code, _short(exc))  # fmt: skip
                return True
            self.rejections -= 1
            return False


def _level_of(fmt: dict[str, Any] | None) -> str:
    if fmt is None:
        return "none"
    if fmt.get("type") == "json_schema":
        return "json_schema"
    return "json_object_schema" if "schema" in fmt else "json_object"


def _short(exc: openai.APIStatusError, limit: int = 160) -> str:
    text = " ".join(str(exc.message).split())
    return text if len(text) <= limit else text[:limit] + "..."
