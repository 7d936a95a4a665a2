"""Rotary position embeddings, shared by the decoders (Qwen3, Qwen2) and ModernBERT.

Position p turns each pair of a head's dimensions by the angle p * theta^(-2i/d). A query at p
and a key at p' then score q . k as a function of p - p' alone: attention sees relative
positions, and there is no position table to outgrow. Pairs are (i, i + d/2), the "rotate half"
layout Qwen and ModernBERT checkpoints are trained with.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """The cos/sin tables of positions 0..T-1 for heads of `head_dim` and base `theta`."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim  # (d/2,)
        # A constant of the architecture, not a weight: never saved, never loaded.
        self.inv_freq: Tensor
        self.register_buffer("inv_freq", 1.0 / (theta**exponents), persistent=False)

    def forward(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        positions = torch.arange(seq_len, device=device, dtype=torch.float32)  # (T,)
        angles = positions[:, None] * self.inv_freq[None, :]  # (T, d/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, d): pair i and i + d/2 share an angle
        return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate every (i, i + d/2) pair of x (B, heads, T, d) by its position's angle."""
    first, second = x.chunk(2, dim=-1)  # (B, heads, T, d/2) each
    turned = torch.cat((-second, first), dim=-1)  # the pair rotated by 90 degrees
    return x * cos + turned * sin
