"""Reference tokenisation for the PyTorch path: the checkpoint's own `tokenizer.json`."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer


class ReferenceTokenizer:
    """Batches texts into padded (B, T) tensors, truncating at the end to `max_tokens`."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(path))
        # tokenizer.json files often carry a fixed padding/truncation from training: drop them.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(texts)
        seq_len = max(len(e.ids) for e in encodings)
        ids = torch.full((len(texts), seq_len), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(texts), seq_len), dtype=torch.long)
        mask = torch.zeros((len(texts), seq_len), dtype=torch.long)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = torch.tensor(enc.ids)
            types[row, :n] = torch.tensor(enc.type_ids)
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def tokens(self, text: str) -> list[str]:
        return list(self.tokenizer.encode(text).tokens)
