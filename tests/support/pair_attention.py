"""A cross-encoder through transformers with eager attention: the judge of pair maps and of
rollout over a pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_LENGTH = 128  # the test checkpoints' CrossEncoder max_length (tokens per pair)


class EagerReference:
    """The checkpoint through transformers with eager attention: its probabilities per pair."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), attn_implementation="eager"
        ).eval()

    def maps(self, first: str, second: str | None) -> tuple[np.ndarray, Any]:
        """(layers, heads, n, n) for one pair (no padding), and its encoding."""
        encoded = self.tokenizer(
            first, second, truncation="longest_first", max_length=MAX_LENGTH,
            return_tensors="pt", return_special_tokens_mask=True,
        )  # fmt: skip
        feeds = {k: v for k, v in encoded.items() if k != "special_tokens_mask"}
        with torch.no_grad():
            out = self.model(**feeds, output_attentions=True)
        return torch.stack(out.attentions)[:, 0].numpy(), encoded


def spans(encoded: Any) -> list[tuple[int, int]]:
    """Each text's [start, end) from transformers' own sequence ids and special-token mask."""
    ids, special = encoded.sequence_ids(0), encoded["special_tokens_mask"][0].tolist()
    found = []
    for sequence in sorted({s for s in ids if s is not None}):
        positions = [i for i, s in enumerate(ids) if s == sequence and not special[i]]
        found.append((positions[0], positions[-1] + 1))
    return found
