"""Write a merged backbone as a sentence-transformers model directory that computes what the harness computed.

The harness's encoder (apex.model.encoder.Encoder) is: prefix + text → tokenizer (truncated to the query or
document max length; decoders end every text with EOS) → backbone → pooling (mean, CLS or last real token) → L2
normalisation. Each piece maps onto a standard sentence-transformers module, so ``SentenceTransformer(path)``
loads the export with no apex code and no ``trust_remote_code``:

- prefixes → ``prompts`` {"query": ..., "document": ...} in ``config_sentence_transformers.json``, used by
  ``encode_query`` / ``encode_document`` (or ``encode(..., prompt_name="query")``);
- max lengths → the Transformer module's ``query_length`` / ``document_length`` (plain ``encode`` truncates at
  the longer of the two);
- EOS → the tokenizer's own post-processor: EOS is appended after the tokenizer's usual special tokens, and
  truncation reserves its place, exactly as ``Encoder.tokenize`` does (truncate to max_length - 1, then EOS);
- pooling → ``Pooling(pooling_mode=mean|cls|lasttoken)``; last-token pooling picks the last real position of
  each row for right and left padding alike (the tokenizer keeps the padding side the run used);
- normalisation → ``Normalize``; similarity → cosine;
- plain text in: the Transformer module is pinned to the ``text`` modality. sentence-transformers >= 6 otherwise
  renders every input through the tokenizer's chat template when it has one (SmolLM2-Instruct does: a system
  prompt and role markers around each text), which the harness never did.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import processors
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from apex.model.config import ModelConfig

ST_POOLING = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}


def append_eos_post_processor(tokenizer: PreTrainedTokenizerBase) -> None:
    """Make the (fast) tokenizer end every encoded text with EOS, after its own special tokens.

    Rewrites the ``TemplateProcessing`` post-processor, e.g. ``[CLS] $A [SEP]`` → ``[CLS] $A [SEP] [SEP]`` for a
    BERT vocabulary whose EOS is [SEP], ``$A`` → ``$A <|im_end|>`` for SmolLM2. The template counts its special
    tokens, so truncation to max_length keeps room for the EOS, as the harness does.
    """
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eos_id is None:
        raise ValueError("model.append_eos is true but the tokenizer has no EOS token")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: cannot store the EOS rule in it")
    state = json.loads(backend.to_str()).get("post_processor") or {"type": "TemplateProcessing", "single": [],
                                                                   "pair": [], "special_tokens": {}}  # fmt: skip
    if state.get("type") != "TemplateProcessing":
        raise ValueError(f"cannot add EOS to a {state.get('type')} post-processor (expected TemplateProcessing)")

    def template(pieces: list[dict], default: list[str]) -> list[str]:
        out = [p["SpecialToken"]["id"] if "SpecialToken" in p else f"${p['Sequence']['id']}" for p in pieces]
        return out or default

    specials = {name: token["ids"][0] for name, token in state.get("special_tokens", {}).items()}
    specials[eos] = eos_id
    backend.post_processor = processors.TemplateProcessing(
        single=[*template(state.get("single", []), ["$A"]), eos],
        pair=[*template(state.get("pair", []), ["$A", "$B"]), f"{eos}:1"],
        special_tokens=list(specials.items()),
    )


def build_sentence_transformer(hf_dir: Path, cfg: ModelConfig, dimension: int):  # -> SentenceTransformer
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    backbone = Transformer(
        str(hf_dir),
        # Plain text only. A tokenizer with a chat template (SmolLM2-Instruct) would otherwise make
        # sentence-transformers wrap every text in that template (system prompt, <|im_start|>user ...), which the
        # harness never did: min cosine 0.46 to the run's embeddings before this was pinned.
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
        query_length=cfg.query_max_length,
        document_length=cfg.doc_max_length,
        max_seq_length=max(cfg.query_max_length, cfg.doc_max_length),
    )
    pooling = Pooling(dimension, pooling_mode=ST_POOLING[cfg.pooling], include_prompt=True)
    return SentenceTransformer(
        modules=[backbone, pooling, Normalize()],
        prompts={"query": cfg.query_prefix, "document": cfg.doc_prefix},
        similarity_fn_name="cosine",
        device="cpu",
    )


def write_sentence_transformer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: ModelConfig, out_dir: Path, dtype: torch.dtype
) -> Path:
    """Save ``model`` (merged, plain transformers) and ``tokenizer`` as a sentence-transformers directory.

    The backbone is staged in a temporary folder and loaded back by sentence-transformers itself, so what is
    written is what ``SentenceTransformer(out_dir)`` will load.
    """
    if cfg.append_eos:
        tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer keeps the harness's rule (EOS added by it)
        append_eos_post_processor(tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".stage-") as stage:
        model.to(dtype).save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        dimension = int(model.config.hidden_size)
        st_model = build_sentence_transformer(Path(stage), cfg, dimension)
        st_model.save_pretrained(str(out_dir))
        del st_model
    leftover = out_dir / "adapter_config.json"  # never leave a peft file at the root: peft would try to load it
    if leftover.exists():
        leftover.unlink()
    shutil.rmtree(out_dir / ".stage", ignore_errors=True)
    return out_dir
