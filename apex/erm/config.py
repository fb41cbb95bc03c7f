"""Typed configuration of the ERM stage (Hydra group `erm`): the parts backends share; each backend's own config
lives with it (apex/erm/backends/<name>.py) and holds only the keys it reads.

API keys are never configuration: the key comes from the environment variable `OPENAI_API_KEY` only, and a config
field whose name looks like a credential is rejected with a message that does not repeat its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.errors import ConfigError

APPLY_TO = ("documents", "documents_and_queries")
MODES = ("online", "batch")
# json_object_schema: {"type": "json_object", "schema": ...}, llama-cpp-python's form (apex.erm.compat).
STRUCTURED_OUTPUT = ("json_schema", "json_object_schema", "json_object", "none")
API_KEY_ENV = "OPENAI_API_KEY"

# Names that look like a credential: rejected wherever they appear ('max_tokens' is not one).
_SECRET_NAME = re.compile(r"key|secret|passw|credential|bearer|auth_token|access_token", re.IGNORECASE)


def _bad(field: str, message: str) -> ConfigError:
    return ConfigError(f"erm.{field}", message)


@dataclass(frozen=True)
class ErmConfig:
    """The `erm` config group: `name` selects a registered backend (apex.erm.registry.ERM_BACKENDS), whose config
    class (a subclass) holds its keys; see docs/erm.md for what each one does."""

    name: str = "none"

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "erm") -> ErmConfig:
        """Build from a mapping (dict or OmegaConf DictConfig); unknown keys and bad values raise `ConfigError`."""
        from apex.erm.registry import ERM_BACKENDS

        values = dict(section or {})
        for name in values:
            if _SECRET_NAME.search(str(name)):
                raise ConfigError(
                    f"{key}.{name}",
                    f"credentials are not configuration: the API key is read from the environment variable "
                    f"{API_KEY_ENV} only; remove this field",
                )
        if values.get("base_url") == "":
            values["base_url"] = None
        return ERM_BACKENDS.read(values, key, cls.__dataclass_fields__["name"].default)  # type: ignore[no-any-return]

    def validate(self) -> None:
        """Rules that types cannot say; subclasses extend it."""

    @property
    def is_llm(self) -> bool:
        """An LLM behind an OpenAI-style API (it can also write queries, and needs a pre-flight check)."""
        return False


@dataclass(frozen=True)
class MapsConfig(ErmConfig):
    """What every backend that writes maps reads. `model` "" means the backend's default."""

    apply_to: str = "documents"
    model: str = ""
    # A longer document is cut to its first `max_input_chars` characters (at a word boundary when one lies in the
    # last 10%): spaCy refuses texts over 1,000,000 characters and an LLM would be sent (and bill) all.
    max_input_chars: int = 100_000
    min_chars: int = 20
    retry_failed: bool = False

    def validate(self) -> None:
        if self.apply_to not in APPLY_TO:
            raise _bad("apply_to", f"{self.apply_to!r} is not one of {list(APPLY_TO)}")
        if self.max_input_chars <= 0:
            raise _bad("max_input_chars", f"must be > 0, got {self.max_input_chars}")
        if self.min_chars < 0:
            raise _bad("min_chars", f"must be >= 0, got {self.min_chars}")

    @property
    def resolved_model(self) -> str:
        """The model name sent to the server (LLM backends) or '' (spaCy resolves its own at load time)."""
        return self.model


@dataclass(frozen=True)
class LlmConfig(MapsConfig):
    """A chat model behind an OpenAI-compatible API (gpt4o, openai_compatible)."""

    base_url: str | None = None
    mode: str = "online"
    structured_output: str = "json_schema"
    concurrency: int = 8
    max_retries: int = 6
    timeout_s: float = 60.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_reasks: int = 2
    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 2048
    preflight_timeout_s: float = 10.0
    # USD per 1M tokens, for the cost estimate only; batch requests are billed at `batch_discount` of the price.
    price_prompt_per_1m: float = 0.0
    price_completion_per_1m: float = 0.0
    batch_discount: float = 0.5
    batch_poll_s: float = 30.0
    batch_max_wait_s: float = 86400.0

    def validate(self) -> None:
        super().validate()
        for field, allowed in {"mode": MODES, "structured_output": STRUCTURED_OUTPUT}.items():
            if getattr(self, field) not in allowed:
                raise _bad(field, f"{getattr(self, field)!r} is not one of {list(allowed)}")
        for field in ("concurrency", "timeout_s", "backoff_base_s", "backoff_max_s", "max_tokens"):
            if getattr(self, field) <= 0:
                raise _bad(field, f"must be > 0, got {getattr(self, field)}")
        non_negative = ("max_retries", "max_reasks", "temperature", "price_prompt_per_1m", "price_completion_per_1m")
        for field in (*non_negative, "batch_poll_s", "preflight_timeout_s"):
            if getattr(self, field) < 0:
                raise _bad(field, f"must be >= 0, got {getattr(self, field)}")
        if not 0 < self.batch_discount <= 1:
            raise _bad("batch_discount", f"must be in (0, 1], got {self.batch_discount}")
        if self.base_url is not None and not re.match(r"^https?://", self.base_url):
            raise _bad("base_url", f"must start with http:// or https://, got {self.base_url!r}")

    @property
    def is_llm(self) -> bool:
        return True

    @property
    def resolved_model(self) -> str:
        return self.model or ("gpt-4o" if self.name == "gpt4o" else "")

    def cache_settings(self) -> dict[str, object]:
        """Generation settings recorded with each cached answer (not keyed: apex.erm.cache)."""
        from apex.core.secrets import scrub

        return {
            "temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens,
            "structured_output": self.structured_output, "mode": self.mode, "base_url": scrub(self.base_url or ""),
        }  # fmt: skip
