"""Normalisations the families share beyond torch's LayerNorm (post-norm BERT, pre-norm
ModernBERT): RMSNorm, the decoders' (Qwen3/Qwen2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without centring and without a bias."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()  # the mean of squares in fp32, whatever the working precision
        mean_square = x32.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        normed: Tensor = self.weight * (x32 * torch.rsqrt(mean_square + self.eps)).to(x.dtype)
        return normed
