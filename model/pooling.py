"""Pooling: token vectors (B, T, H) and a padding mask (B, T) -> one vector per text (B, H)."""

from __future__ import annotations

import torch
from torch import Tensor

from attnserve.model.config import Pooling


def pool(hidden: Tensor, attention_mask: Tensor, pooling: Pooling) -> Tensor:
    if pooling is Pooling.CLS:
        return hidden[:, 0]  # (B, H)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if pooling is Pooling.MEAN:
        summed = (hidden * mask).sum(dim=1)  # (B, H)
        counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1); clamp as sentence-transformers does
        return summed / counts
    # LAST: the last real token of each row, wherever padding starts.
    last = attention_mask.sum(dim=1).long().clamp(min=1) - 1  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
