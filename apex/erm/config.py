"""Typed, validated configuration of the ERM stage (Hydra group `erm`, files `conf/erm/<name>.yaml`).

API keys are never configuration: the key comes from the environment variable `OPENAI_API_KEY` only, and a config
field whose name looks like a credential is rejected with a message that does not repeat its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apex.core.errors import ConfigError
from apex.core.schema import read_dataclass

BACKENDS = ("none", "spacy", "gpt4o", "openai_compatible")
LLM_BACKENDS = ("gpt4o", "openai_compatible")
APPLY_TO = ("documents", "documents_and_queries")
MODES = ("online", "batch")
STRUCTURED_OUTPUT = ("json_schema", "json_object")
API_KEY_ENV = "OPENAI_API_KEY"

# Names that look like a credential: rejected wherever they appear ('max_tokens' is not one).
_SECRET_NAME = re.compile(r"key|secret|passw|credential|bearer|auth_token|access_token", re.IGNORECASE)


@dataclass(frozen=True)
class ErmConfig:
    """Every knob of the ERM stage; see docs/erm.md for what each one does."""

    name: str = "none"
    apply_to: str = "documents"
    # LLM backends. `model` "" means the backend's default (gpt4o: gpt-4o; spacy: the installed English model).
    model: str = ""
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
    # All backends. A longer document is cut to its first `max_input_chars` characters (at a word boundary when one
    # lies in the last 10%): spaCy refuses texts over 1,000,000 characters and an LLM would be sent (and bill) all.
    max_input_chars: int = 100_000
    min_chars: int = 20
    retry_failed: bool = False
    # Offline backend.
    spacy_batch_size: int = 64
    spacy_noun_chunks: bool = True
    spacy_n_process: int = 0  # worker processes for spaCy maps; 0 = one per usable CPU (maps are the same)

    @classmethod
    def from_cfg(cls, section: Mapping[str, Any] | None, key: str = "erm") -> ErmConfig:
        """Build from a mapping (dict or OmegaConf DictConfig); unknown keys and bad values raise `ConfigError`."""
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
        return read_dataclass(cls, key, values)

    def validate(self) -> None:
        def bad(field: str, message: str) -> ConfigError:
            return ConfigError(f"erm.{field}", message)

        choices = {
            "name": BACKENDS,
            "apply_to": APPLY_TO,
            "mode": MODES,
            "structured_output": STRUCTURED_OUTPUT,
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise bad(field, f"{getattr(self, field)!r} is not one of {list(allowed)}")
        positive = (
            "concurrency", "timeout_s", "backoff_base_s", "backoff_max_s", "max_tokens", "spacy_batch_size",
            "max_input_chars",
        )  # fmt: skip
        for field in positive:
            if getattr(self, field) <= 0:
                raise bad(field, f"must be > 0, got {getattr(self, field)}")
        non_negative = ("max_retries", "max_reasks", "temperature", "price_prompt_per_1m", "price_completion_per_1m")
        for field in (*non_negative, "min_chars", "batch_poll_s", "preflight_timeout_s", "spacy_n_process"):
            if getattr(self, field) < 0:
                raise bad(field, f"must be >= 0, got {getattr(self, field)}")
        if not 0 < self.batch_discount <= 1:
            raise bad("batch_discount", f"must be in (0, 1], got {self.batch_discount}")
        if self.name == "openai_compatible":
            if not self.base_url:
                raise bad("base_url", "openai_compatible needs the server's base URL, e.g. http://127.0.0.1:8000/v1")
            if not self.model:
                raise bad("model", "openai_compatible needs the model name the server serves")
        if self.base_url is not None and not re.match(r"^https?://", self.base_url):
            raise bad("base_url", f"must start with http:// or https://, got {self.base_url!r}")
        if self.mode == "batch" and self.name not in LLM_BACKENDS:
            raise bad("mode", "batch mode needs an LLM backend (gpt4o or openai_compatible)")

    @property
    def is_llm(self) -> bool:
        return self.name in LLM_BACKENDS

    @property
    def resolved_model(self) -> str:
        """The model name sent to the server (LLM backends) or '' (spaCy resolves its own at load time)."""
        if self.model:
            return self.model
        return "gpt-4o" if self.name == "gpt4o" else ""
