"""The embedding model as the pipeline sees it: texts in, L2-normalised vectors out."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchEncoding

from apex.core.progress import progress_bar
from apex.model.config import ModelConfig
from apex.model.loading import LoadedModel, load_base_model
from apex.model.pooling import POOLERS
from apex.model.precision import autocast, resolve_bf16

log = logging.getLogger("apex.model")

Kind = Literal["query", "document"]


class Encoder:
    """A transformer backbone + pooling + L2 normalisation, with per-kind prefixes and max lengths.

    ``embed`` keeps the graph (training); ``encode`` is the batched, no-grad, length-sorted inference path.
    ``model`` may be swapped for a LoRA-wrapped version of itself (``peft.PeftModel``) by the training recipe.
    """

    def __init__(self, loaded: LoadedModel, cfg: ModelConfig, device: torch.device) -> None:
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.cfg = cfg
        self.device = device
        self.directory = loaded.directory
        self.weights_hash = loaded.weights_hash
        self.use_bf16 = resolve_bf16(cfg.bf16, device)
        self.pool = POOLERS[cfg.pooling]

    def identity(self) -> dict[str, object]:
        """Everything that changes what the *base* model computes: the key of cached base embeddings."""
        return {
            "source": self.cfg.source,
            "weights": self.weights_hash,
            "pooling": self.cfg.pooling,
            "query_max_length": self.cfg.query_max_length,
            "doc_max_length": self.cfg.doc_max_length,
            "query_prefix": self.cfg.query_prefix,
            "doc_prefix": self.cfg.doc_prefix,
            "append_eos": self.cfg.append_eos,
            "bf16": self.use_bf16,
            "quantization": self.cfg.quantization,
        }

    def token_ids(self, texts: Sequence[str], kind: Kind) -> list[list[int]]:
        """Token ids per text, prefixed and truncated (EOS-terminated for decoders), unpadded.

        Training tokenises each text once per run through this and pads per batch (`pad`): the same ids
        `tokenize` gives, without re-tokenising a text every time a batch draws it.
        """
        prefix = self.cfg.query_prefix if kind == "query" else self.cfg.doc_prefix
        max_length = self.cfg.query_max_length if kind == "query" else self.cfg.doc_max_length
        texts = [prefix + t for t in cap_texts(texts, max_length, kind)]
        if not self.cfg.append_eos:
            return self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        # Decoders read the whole text into the last position: end every text with EOS so that position is
        # the same kind of token for all texts, also for truncated ones.
        rows = self.tokenizer(texts, truncation=True, max_length=max_length - 1)["input_ids"]
        return [[*row, self.tokenizer.eos_token_id] for row in rows]

    def tokenize(self, texts: Sequence[str], kind: Kind) -> BatchEncoding:
        """(batch, longest) input ids and attention mask on the encoder's device."""
        return self.pad(self.token_ids(texts, kind))

    def pad(self, rows: Sequence[Sequence[int]]) -> BatchEncoding:
        """Pad token id lists to one (batch, longest) tensor on the tokenizer's padding side (dynamic padding)."""
        longest = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for i, row in enumerate(rows):
            span = slice(longest - len(row), longest) if left else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, span] = 1
        return BatchEncoding({"input_ids": input_ids, "attention_mask": attention_mask}).to(self.device)

    def forward_tokens(self, batch: BatchEncoding) -> torch.Tensor:
        """(batch, dim) float32, unit norm, differentiable, from a padded batch (`tokenize` / `pad`)."""
        with autocast(self.use_bf16, self.device):
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        pooled = self.pool(hidden.float(), batch["attention_mask"])  # (batch, dim)
        return F.normalize(pooled, dim=-1)

    def embed(self, texts: Sequence[str], kind: Kind) -> torch.Tensor:
        """(len(texts), dim) float32, unit norm, differentiable."""
        return self.forward_tokens(self.tokenize(texts, kind))

    def embed_rows(self, rows: Sequence[Sequence[int]], micro_batch: int | None = None) -> torch.Tensor:
        """(len(rows), dim) like `embed`, from token id rows, in length-sorted micro-batches of ``micro_batch`` rows.

        Padding a whole batch to its longest text wastes the difference on every shorter one: 32 SQuAD paragraphs
        padded to 256 tokens are ~40% padding. Sorted by length and cut into micro-batches, each padded only to its
        own longest, the same texts cost close to their real token count. The maths is unchanged: every row is
        embedded on its own (attention never crosses rows), and the rows come back in input order, gradients too.
        None = one batch, the plain padded path.
        """
        size = micro_batch or len(rows)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # longest first
        parts = [
            self.forward_tokens(self.pad([rows[i] for i in order[start : start + size]]))
            for start in range(0, len(order), size)
        ]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        return torch.cat(parts)[inverse.to(self.device)]  # (len(rows), dim), back in input order

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], kind: Kind, show_progress: bool = False, batch_size: int | None = None
    ) -> np.ndarray:
        """(len(texts), dim) float32 numpy, unit norm; texts are batched longest first to waste little padding
        (sorted by characters: tokenising a whole corpus up front would hold every id list in memory at once).

        Each batch's rows are written straight into the one output array, so a corpus costs its embeddings once
        (not three times, as collecting, concatenating and un-sorting copies would: 230 MB more at 50,000 x 384)."""
        batch_size = batch_size or self.cfg.batch_size
        order = np.argsort([-len(t) for t in texts], kind="stable")
        was_training = self.model.training
        self.model.eval()
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        try:
            starts = range(0, len(texts), batch_size)
            for start in progress_bar(
                starts,
                desc="encode queries" if kind == "query" else "encode documents",
                enabled=show_progress,
                leave=False,
            ):
                rows = order[start : start + batch_size]
                out[rows] = self.embed([texts[i] for i in rows], kind).cpu().numpy()  # back in input order
        finally:
            self.model.train(was_training)
        return out

    def for_evaluation(self, *, merge_lora: bool, fp32: bool) -> Encoder:
        """An encoder for one evaluation: the same weights, arranged to be fast and to compute what an export does.

        ``merge_lora``: a LoRA-wrapped model evaluates a *copy* with W' = W + (alpha / r) · B A merged into every
        adapted layer, so each forward runs one matmul per layer instead of three (W x, A x, B (A x)) and no peft
        dispatch; the training model is untouched (merging in place and un-merging after would leave rounding in
        W). Skipped for 4-bit bases: merging into NF4 weights re-quantises them. The merged copy is the network
        `apex.export` writes, so the export reproduces the evaluation's numbers.
        ``fp32``: no bf16 autocast, so the scores do not depend on whether this CPU has native bf16, and equal
        those of the exported model, which sentence-transformers runs in float32.
        """
        view = copy.copy(self)  # shares tokenizer, config and (unless merged) the model
        if fp32:
            view.use_bf16 = False
        if merge_lora and self.cfg.quantization == "none" and hasattr(self.model, "merge_and_unload"):
            view.model = copy.deepcopy(self.model).merge_and_unload(progressbar=False)
        return view

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def load_encoder(cfg: ModelConfig, device: torch.device | None = None) -> Encoder:
    device = device or pick_device()
    return Encoder(load_base_model(cfg, device), cfg, device)


class LazyEncoder:
    """The base encoder of ``cfg``, loaded on the first ``get()`` (the recipe needs it to mine negatives only when
    they are not in the data store, and else only for training)."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.encoder: Encoder | None = None

    def get(self) -> Encoder:
        if self.encoder is None:
            self.encoder = load_encoder(self.cfg)
        return self.encoder


# A fast tokenizer tokenises the whole text before truncating it: a 21 MB line once cost 4 GB to keep 256 tokens.
# Texts are cut first at CHARS_PER_TOKEN_BOUND characters per kept token, more than any real token spans, so the
# tokens kept are the same; the number of texts cut is logged.
CHARS_PER_TOKEN_BOUND = 64


def cap_texts(texts: Sequence[str], max_length: int, kind: str) -> list[str]:
    """`texts` cut to `max_length * CHARS_PER_TOKEN_BOUND` characters before tokenising; warns with the count."""
    cap = max_length * CHARS_PER_TOKEN_BOUND
    cut = sum(1 for t in texts if len(t) > cap)
    if cut:
        log.warning("%d %s text(s) longer than %d characters cut to that before tokenising (%d tokens are kept)",
                    cut, kind, cap, max_length)  # fmt: skip
    return [t[:cap] for t in texts] if cut else list(texts)
