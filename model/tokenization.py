"""Reference tokenisation for the PyTorch path: the checkpoint's own `tokenizer.json`."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from attnserve.service.padding import pad


class ReferenceTokenizer:
    """Batches texts into padded (B, T) tensors, truncating at the end to `max_tokens`, padding
    with the model's `pad_id` (its config's `pad_token_id`, which the manifest gives the server).

    Whatever the tokenizer.json's model (WordPiece, BPE, Unigram), its post-processor adds the
    family's special tokens ([CLS] .. [SEP], <s> .. </s>, an end-of-text token)."""

    def __init__(self, path: Path, max_tokens: int, pad_id: int = 0) -> None:
        self.tokenizer = Tokenizer.from_file(str(path))
        # tokenizer.json files often carry a fixed padding/truncation from training: drop them.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.pad_id = pad_id

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(texts)
        batch = pad([e.ids for e in encodings], [e.type_ids for e in encodings], self.pad_id)
        return {name: torch.from_numpy(value) for name, value in batch.feeds().items()}

    def pairs(self, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """Text pairs through tokenizer.json's pair template ([CLS] a [SEP] b [SEP] with token
        types, <s> a </s></s> b </s>), truncated longest-first as CrossEncoder's tokenizer does."""
        encodings = self.tokenizer.encode_batch(pairs)
        batch = pad([e.ids for e in encodings], [e.type_ids for e in encodings], self.pad_id)
        return {name: torch.from_numpy(value) for name, value in batch.feeds().items()}

    def tokens(self, text: str) -> list[str]:
        return list(self.tokenizer.encode(text).tokens)
