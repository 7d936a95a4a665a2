"""Which keys a query may see, as one additive (B, 1, T, T) mask: padding, causal, a window.

0 where a query may attend, the most negative finite float where it may not. Not -inf: exp(min -
max) underflows to exactly 0, while a row can never become all -inf and turn into NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor


def additive_attention_mask(
    attention_mask: Tensor, causal: bool, dtype: torch.dtype, window: int | None = None
) -> Tensor:
    """attention_mask (B, T), 1 = real token -> (B, 1, T, T).

    `causal` blocks keys after the query; `window` blocks keys more than `window` positions away
    on either side (local, sliding-window attention)."""
    seq_len = attention_mask.shape[1]
    blocked = attention_mask[:, None, None, :] == 0  # (B, 1, 1, T): padded keys
    # Spelled out per query row: ONNX Runtime's fused Attention wants a (B, 1, T, T) mask.
    blocked = blocked.expand(-1, -1, seq_len, -1)  # (B, 1, T, T)
    positions = torch.arange(seq_len, device=attention_mask.device)  # (T,)
    distance = positions[None, :] - positions[:, None]  # (T, T): key minus query
    if causal:
        blocked = blocked | (distance > 0)  # keys after the query
    if window is not None:
        blocked = blocked | (distance.abs() > window)  # keys outside the window
    zeros = torch.zeros(blocked.shape, dtype=dtype, device=attention_mask.device)
    return zeros.masked_fill(blocked, torch.finfo(dtype).min)
