"""The pre-norm layer of the rotary families (the Qwen decoders, ModernBERT), as nanoGPT's Block:
each sub-layer reads a normalised copy of the stream and adds its result to the raw stream.

A family's layer sets its own norms, attention and feed-forward in `__init__` (RMSNorm and
grouped-query attention with SwiGLU; LayerNorm and windowed attention with GeGLU); the residual
wiring, the one thing they share, is written once here."""

from __future__ import annotations

from torch import Tensor, nn

from attnserve.model.embedding_model import AttentionImpl


class PreNormLayer(nn.Module):
    attention_norm: nn.Module
    attention: nn.Module  # (x, additive_mask, cos, sin, impl, want_probs) -> (out, probs)
    feed_forward_norm: nn.Module
    feed_forward: nn.Module

    def forward(
        self,
        x: Tensor,
        additive_mask: Tensor,
        cos: Tensor,
        sin: Tensor,
        impl: AttentionImpl,
        want_probs: bool,
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(
            self.attention_norm(x), additive_mask, cos, sin, impl, want_probs
        )
        x = x + attended  # (B, T, H)
        x = x + self.feed_forward(self.feed_forward_norm(x))
        return x, probs
