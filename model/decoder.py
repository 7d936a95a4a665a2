"""A decoder-style embedding model (Qwen3, Qwen2): masked self-attention from first principles.

Read top to bottom it follows the definition: token embeddings (no position table: positions
enter as rotations of queries and keys), then per layer, pre-norm: RMSNorm; Q/K/V projections
with fewer key/value heads than query heads (grouped-query attention); per-head RMSNorm of Q and K
(Qwen3); rotary position embeddings; scores QK^T / sqrt(d_k); the causal mask (each position
attends only to itself and earlier ones) together with the padding mask; softmax; weighted sum of
V; heads concatenated and projected by W_O; residual. Then RMSNorm, the SwiGLU feed-forward,
residual. A final RMSNorm, last-token pooling (the only position that has seen the whole text)
and optional L2 normalisation.

As in `encoder.py`, the explicit attention path (which can return the probabilities) and
PyTorch's fused `scaled_dot_product_attention` sit side by side.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.encoder import AttentionImpl, EncoderOutput, additive_attention_mask
from attnserve.model.pooling import pool
from attnserve.model.rotary import RotaryEmbedding, rotate


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


class GroupedQueryAttention(nn.Module):
    """Masked multi-head self-attention in which groups of query heads share one K/V head."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.group_size = config.group_size  # query heads per K/V head
        self.head_dim = config.head_dim
        q_size, kv_size = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        self.query = nn.Linear(config.hidden_size, q_size, bias=config.qkv_bias)
        self.key = nn.Linear(config.hidden_size, kv_size, bias=config.qkv_bias)
        self.value = nn.Linear(config.hidden_size, kv_size, bias=config.qkv_bias)
        self.out = nn.Linear(q_size, config.hidden_size, bias=config.out_bias)  # W_O
        self.query_norm = RMSNorm(config.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.key_norm = RMSNorm(config.head_dim, config.rms_norm_eps) if config.qk_norm else None

    def forward(
        self,
        x: Tensor,
        additive_mask: Tensor,
        cos: Tensor,
        sin: Tensor,
        impl: AttentionImpl,
        want_probs: bool,
    ) -> tuple[Tensor, Tensor | None]:
        batch, seq_len, _ = x.shape
        q = self.query(x).view(batch, seq_len, self.num_heads, self.head_dim)  # (B, T, nh, hs)
        k = self.key(x).view(batch, seq_len, self.num_kv_heads, self.head_dim)  # (B, T, nkv, hs)
        v = self.value(x).view(batch, seq_len, self.num_kv_heads, self.head_dim)
        if self.query_norm is not None and self.key_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)  # each head's vector, on its own
        q = rotate(q.transpose(1, 2), cos, sin)  # (B, nh, T, hs)
        k = rotate(k.transpose(1, 2), cos, sin)  # (B, nkv, T, hs)
        v = v.transpose(1, 2)  # (B, nkv, T, hs)

        probs: Tensor | None = None
        if impl == "sdpa" and not want_probs:
            # Fused: the same maths as below, K/V heads shared without being copied.
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=additive_mask, enable_gqa=True
            )
        else:
            group = self.group_size
            k = k.repeat_interleave(group, dim=1)  # (B, nh, T, hs): K/V head j serves queries
            v = v.repeat_interleave(group, dim=1)  # j * group .. (j + 1) * group - 1
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, nh, T, T)
            scores = scores + additive_mask  # future and padded keys -> weight exactly 0
            probs = torch.softmax(scores, dim=-1)  # (B, nh, T, T), lower-triangular rows
            context = probs @ v  # (B, nh, T, hs)

        context = context.transpose(1, 2).reshape(batch, seq_len, -1)  # concat heads
        attended: Tensor = self.out(context)  # (B, T, H)
        return attended, probs


class SwiGLU(nn.Module):
    """The gated feed-forward: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.silu(self.gate(x)) * self.up(x)  # (B, T, I)
        out: Tensor = self.down(hidden)  # (B, T, H)
        return out


class DecoderLayer(nn.Module):
    """Pre-norm: each sub-layer reads a normalised copy and adds its result to the raw stream."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = GroupedQueryAttention(config)
        self.feed_forward_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.feed_forward = SwiGLU(config)

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


class Decoder(nn.Module):
    """The whole decoder: embeddings, causal layers, final norm, last-token pooling."""

    def __init__(self, config: DecoderConfig, attention_impl: AttentionImpl = "explicit") -> None:
        super().__init__()
        self.config = config
        self.attention_impl: AttentionImpl = attention_impl
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        normalize: bool | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> EncoderOutput:
        """input_ids, attention_mask: (B, T) integer tensors; mask 1 = real token.

        `token_type_ids` is accepted and ignored (decoders have no segments) so both families
        share one call shape. Positions count from each row's first column, as transformers
        counts them: with right padding (how attnserve pads) every text's tokens sit at
        0..n-1 whatever else is in the batch.
        """
        impl = self.attention_impl if attention_impl is None else attention_impl
        x: Tensor = self.embeddings(input_ids)  # (B, T, H)
        cos, sin = self.rotary(input_ids.shape[1], input_ids.device)  # (T, hs) each
        additive_mask = additive_attention_mask(attention_mask, causal=True, dtype=x.dtype)

        attentions: list[Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, additive_mask, cos, sin, impl, output_attentions)
            if probs is not None and output_attentions:
                attentions.append(probs)
        x = self.norm(x)  # (B, T, H)

        pooled = pool(x, attention_mask, self.config.pooling)  # (B, H)
        if self.config.normalize if normalize is None else normalize:
            pooled = F.normalize(pooled, p=2.0, dim=-1)
        return EncoderOutput(x, pooled, tuple(attentions))
