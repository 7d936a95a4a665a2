"""Scaled dot-product attention, the seeds' definition, shared by every family.

softmax(QK^T / sqrt(d_k) + mask) V, where the additive mask carries everything a family varies in
what a query may see or prefer: padded keys, future keys (causal), keys outside a window (local
attention), a learned relative position bias. Two paths side by side: the explicit one, which can
return the probabilities (the maps graph), and PyTorch's fused `scaled_dot_product_attention`,
which computes the same thing without materialising them (the fast graph; the ONNX exporter turns
it into one `Attention` node).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from attnserve.model.embedding_model import AttentionImpl


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, nh * hs) -> (B, nh, T, hs)."""
    batch, seq_len, _ = x.shape
    return x.view(batch, seq_len, num_heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, nh, T, hs) -> (B, T, nh * hs): the heads concatenated."""
    batch, heads, seq_len, size = x.shape
    return x.transpose(1, 2).reshape(batch, seq_len, heads * size)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    additive_mask: Tensor,
    impl: AttentionImpl,
    want_probs: bool,
    group_size: int = 1,
) -> tuple[Tensor, Tensor | None]:
    """q (B, nh, T, hs); k, v (B, nh / group_size, T, hs); additive_mask broadcastable to
    (B, nh, T, T). Returns the context (B, nh, T, hs) and, on the explicit path, the probabilities.

    `group_size` query heads share each K/V head (grouped-query attention; 1 for the encoders)."""
    if impl == "sdpa" and not want_probs:
        # Fused: the same maths as below; shared K/V heads are not copied.
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=additive_mask, enable_gqa=group_size > 1
        )
        return context, None
    if group_size > 1:
        k = k.repeat_interleave(group_size, dim=1)  # (B, nh, T, hs): K/V head j serves queries
        v = v.repeat_interleave(group_size, dim=1)  # j * group .. (j + 1) * group - 1
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T, T)
    scores = scores + additive_mask  # blocked keys -> most negative float: weight exactly 0
    probs = torch.softmax(scores, dim=-1)  # (B, nh, T, T), rows sum to 1
    return probs @ v, probs  # (B, nh, T, hs)
