"""Text -> token ids for the server: limits, truncation side, offsets and special-token flags.

Runs on the request path, so it does only what a request needs: one `encode_batch` call (Rust,
parallel, GIL released) per request and cheap numpy packing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from attnserve.service.server.errors import invalid
from attnserve.service.server.options import Truncation


@dataclass(frozen=True)
class EncodedText:
    ids: np.ndarray  # (n,) int64, special tokens included
    type_ids: np.ndarray  # (n,) int64
    truncated: bool
    encoding: Encoding  # the untruncated encoding: token strings, special flags (and offsets)
    kept: np.ndarray | None  # (n,) positions of `encoding` that survived truncation; None: all

    def kept_positions(self) -> list[int]:
        return list(range(self.length)) if self.kept is None else self.kept.tolist()

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


class TextTokenizer:
    """Thread-safe: the shared `Tokenizer` is never reconfigured after construction."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # we truncate ourselves, to know whether we did
        self.special_count = self.tokenizer.num_special_tokens_to_add(is_pair=False)

    def encode(
        self, texts: list[str], truncation: Truncation, max_tokens: int, offsets: bool = False
    ) -> list[EncodedText]:
        """Tokenise texts; over-long ones are truncated on the chosen side or refused.

        Character offsets are computed only when asked for (`Tokenize`): embedding requests
        skip them, which makes tokenisation ~20% cheaper."""
        if not self.special_count < max_tokens <= self.max_tokens:
            raise invalid(
                f"max_tokens must be in {self.special_count + 1}..{self.max_tokens}, "
                f"got {max_tokens}"
            )
        results = []
        for index, encoding in enumerate(self.encodings(texts, offsets)):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            type_ids = np.asarray(encoding.type_ids, dtype=np.int64)
            kept = None
            truncated = ids.shape[0] > max_tokens
            if truncated:
                if truncation is Truncation.NONE:
                    raise invalid(
                        f"text {index} has {ids.shape[0]} tokens, over the limit of "
                        f"{max_tokens}; shorten it or allow truncation"
                    )
                kept = keep_positions(encoding, truncation, max_tokens)
                ids, type_ids = ids[kept], type_ids[kept]
            results.append(EncodedText(ids, type_ids, truncated, encoding, kept))
        return results

    def encodings(self, texts: list[str], offsets: bool) -> list[Encoding]:
        if len(texts) == 1:  # one text: no hand-off to the library's thread pool
            return [self.tokenizer.encode(texts[0])]
        if offsets:
            return self.tokenizer.encode_batch(texts)
        return self.tokenizer.encode_batch_fast(texts)


def keep_positions(encoding: Encoding, truncation: Truncation, max_tokens: int) -> np.ndarray:
    """Positions to keep: the special tokens framing the text, and content from one side."""
    special = np.asarray(encoding.special_tokens_mask, dtype=bool)
    content = np.flatnonzero(~special)
    budget = max_tokens - int(special.sum())
    chosen = content[:budget] if truncation is Truncation.END else content[-budget:]
    return np.sort(np.concatenate([np.flatnonzero(special), chosen]))
