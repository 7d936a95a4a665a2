"""Pooling: token vectors (B, T, H) and a padding mask (B, T) -> one vector per text (B, H)."""

from __future__ import annotations

import torch
from torch import Tensor

from attnserve.service.artifact import Pooling


def pool(hidden: Tensor, attention_mask: Tensor, pooling: Pooling) -> Tensor:
    if pooling is Pooling.CLS:
        return hidden[:, 0]  # (B, H)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if pooling is Pooling.MEAN:
        summed = (hidden * mask).sum(dim=1)  # (B, H)
        counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1); clamp as sentence-transformers does
        return summed / counts
    # LAST: the last real token of each row, whichever side the padding is on.
    positions = torch.arange(hidden.shape[1], device=hidden.device)  # (T,)
    last = (attention_mask.long() * positions).amax(dim=1)  # (B,) highest real position
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
