"""Where positions enter, one function or module per scheme, shared by the families.

- BERT, DistilBERT: a learned table read at 0..T-1 (`absolute_position_ids`).
- RoBERTa, XLM-RoBERTa, CamemBERT: the same table, read from past the padding index: a real token's
  position is `padding_idx + 1 + (real tokens before it)`, a padded one's is `padding_idx`
  (`position_ids_after_padding`); the rows below the offset are never read by real tokens.
- Qwen3/Qwen2 (and ModernBERT): no table; queries and keys are rotated by their position
  (`RotaryEmbedding`, `rotate`), so attention sees only relative positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def absolute_position_ids(attention_mask: Tensor) -> Tensor:
    """(B, T) -> (1, T): 0..T-1 whatever the padding (right-padded real tokens sit at 0..n-1)."""
    return torch.arange(attention_mask.shape[1], device=attention_mask.device).unsqueeze(0)


def position_ids_after_padding(attention_mask: Tensor, padding_idx: int) -> Tensor:
    """(B, T) -> (B, T): RoBERTa's positions, counted over real tokens from `padding_idx + 1`.

    transformers counts `input_ids != padding_idx`; the mask says the same for any batch the
    tokenizer pads, and stays right if a text ever holds the pad id as a real token."""
    real = attention_mask.long()  # (B, T) 1 = real token
    count = torch.cumsum(real, dim=1) * real  # (B, T): 1..n on real tokens, 0 on padding
    return count + padding_idx


class RotaryEmbedding(nn.Module):
    """Position p turns each pair of a head's dimensions by the angle p * theta^(-2i/d).

    A query at p and a key at p' then score q . k as a function of p - p' alone: attention sees
    relative positions, and there is no position table to outgrow. Pairs are (i, i + d/2), the
    "rotate half" layout Qwen (and ModernBERT) checkpoints are trained with.
    """

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
