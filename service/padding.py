"""Token sequences -> one padded (B, T) batch: the models' integer inputs.

Shared by the server's batcher, the PyTorch reference tokenizer and the benchmarks, so every
path pads the same way: pad ids after each sequence (right padding: what last-token pooling and
causal graphs rely on), mask 1 on real tokens, segment ids 0 on padding. A graph takes the
inputs its manifest lists (a decoder has no segment ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TokenIds = Sequence[int] | np.ndarray
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # what a batch can feed


@dataclass(frozen=True)
class PaddedBatch:
    input_ids: np.ndarray  # (B, T) int64, padded with the pad id
    attention_mask: np.ndarray  # (B, T) int64, 1 = real token
    token_type_ids: np.ndarray  # (B, T) int64

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def feeds(self, names: Sequence[str] = INPUT_NAMES) -> dict[str, np.ndarray]:
        """ONNX Runtime's inputs by name: those a graph takes (its GraphSpec.inputs)."""
        every = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        return {name: every[name] for name in names}


def pad(ids: Sequence[TokenIds], type_ids: Sequence[TokenIds] | None, pad_id: int) -> PaddedBatch:
    """Right-pad every sequence to the longest; `type_ids` None means all segment 0."""
    width = max((len(row) for row in ids), default=0)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    token_types = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, sequence in enumerate(ids):
        n = len(sequence)
        input_ids[row, :n] = sequence
        mask[row, :n] = 1
        if type_ids is not None:
            token_types[row, :n] = type_ids[row]
    return PaddedBatch(input_ids, mask, token_types)
