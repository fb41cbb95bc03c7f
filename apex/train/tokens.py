"""Token ids of every training text, computed once per run: a step only pads, it never re-tokenises."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from apex.model.encoder import Encoder, Kind


class TokenCache:
    """text → token ids (prefixed, truncated, unpadded), per kind, filled in batched tokenizer calls.

    A default run draws 2,560 (question, paragraph) pairs from 1,367 paragraphs: without the cache each paragraph
    is tokenised about twice, and a model-aware run tokenises every mined negative again at every draw.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._ids: dict[Kind, dict[str, list[int]]] = {"query": {}, "document": {}}

    def add(self, texts: Iterable[str], kind: Kind) -> None:
        """Tokenise the texts not seen yet, in one batched call (fast tokenizers batch in Rust)."""
        known = self._ids[kind]
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            known.update(zip(missing, self.encoder.token_ids(missing, kind), strict=True))

    def rows(self, texts: Sequence[str], kind: Kind) -> list[list[int]]:
        """The token ids of each text, in order (tokenising any not seen yet)."""
        self.add(texts, kind)
        known = self._ids[kind]
        return [known[t] for t in texts]

    def lengths(self, texts: Sequence[str], kind: Kind) -> list[int]:
        return [len(r) for r in self.rows(texts, kind)]

    def __len__(self) -> int:
        return sum(len(v) for v in self._ids.values())
