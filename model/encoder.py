"""A Transformer encoder written step by step from the definition of self-attention.

Read top to bottom it follows the textbook: embeddings (token + position + segment), then per
layer Q/K/V projections, scores QK^T / sqrt(d_k), additive padding (and optional causal) mask,
softmax, weighted sum of V, heads concatenated and projected by W_O, residual + LayerNorm,
feed-forward, residual + LayerNorm; finally pooling and optional L2 normalisation.

Two attention paths sit side by side: the explicit one (which can return the probabilities)
and PyTorch's fused `scaled_dot_product_attention`, which computes the same thing without
materialising them and which the ONNX exporter turns into one fused `Attention` node.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.config import EncoderConfig
from attnserve.model.pooling import pool

AttentionImpl = Literal["explicit", "sdpa"]


class EncoderOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, H)
    pooled: Tensor  # (B, H)
    attentions: tuple[Tensor, ...]  # per layer (B, nh, T, T); empty unless asked for


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_positions, config.hidden_size)
        self.segment = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device).unsqueeze(0)  # (1, T)
        x: Tensor = self.token(input_ids) + self.position(positions) + self.segment(token_type_ids)
        normed: Tensor = self.norm(x)  # (B, T, H)
        return normed


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with residual + LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)  # W_O
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def split_heads(self, x: Tensor) -> Tensor:
        batch, seq_len, _ = x.shape
        x = x.view(batch, seq_len, self.num_heads, self.head_dim)  # (B, T, nh, hs)
        return x.transpose(1, 2)  # (B, nh, T, hs)

    def forward(
        self, x: Tensor, additive_mask: Tensor, impl: AttentionImpl, want_probs: bool
    ) -> tuple[Tensor, Tensor | None]:
        batch, seq_len, hidden = x.shape
        q = self.split_heads(self.query(x))  # (B, nh, T, hs)
        k = self.split_heads(self.key(x))  # (B, nh, T, hs)
        v = self.split_heads(self.value(x))  # (B, nh, T, hs)

        probs: Tensor | None = None
        if impl == "sdpa" and not want_probs:
            # Fused: the same maths as below, without materialising (B, nh, T, T).
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, nh, T, T)
            scores = scores + additive_mask  # masked keys -> most negative float: weight 0
            probs = torch.softmax(scores, dim=-1)  # (B, nh, T, T), rows sum to 1
            context = probs @ v  # (B, nh, T, hs)

        context = context.transpose(1, 2).reshape(batch, seq_len, hidden)  # concat heads
        attended = self.out(context)  # (B, T, H)
        return self.norm(x + attended), probs


class FeedForward(nn.Module):
    """Position-wise two-layer MLP with residual + LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.hidden_act = config.hidden_act

    def activation(self, x: Tensor) -> Tensor:
        if self.hidden_act == "gelu":
            return F.gelu(x)  # exact erf GELU, as BERT
        if self.hidden_act == "relu":
            return F.relu(x)
        return F.gelu(x, approximate="tanh")

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.activation(self.up(x))  # (B, T, 4H)
        out: Tensor = self.norm(x + self.down(hidden))  # (B, T, H)
        return out


class EncoderLayer(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.feed_forward = FeedForward(config)

    def forward(
        self, x: Tensor, additive_mask: Tensor, impl: AttentionImpl, want_probs: bool
    ) -> tuple[Tensor, Tensor | None]:
        x, probs = self.attention(x, additive_mask, impl, want_probs)
        return self.feed_forward(x), probs


def additive_attention_mask(
    attention_mask: Tensor, causal: bool, dtype: torch.dtype, window: int | None = None
) -> Tensor:
    """0 where a query may attend, the most negative float where it may not: (B, 1, T, T).

    `window` (sliding-window attention) also blocks keys more than `window` positions away from
    the query, on either side. The most negative finite float (not -inf) keeps softmax exact:
    exp(min - max) underflows to exactly 0, while a row can never become all -inf and turn into
    NaN (a query always sees itself).
    """
    seq_len = attention_mask.shape[1]
    blocked = attention_mask[:, None, None, :] == 0  # (B, 1, 1, T): padded keys
    # Spelled out per query row: ONNX Runtime's fused Attention wants a (B, 1, T, T) mask.
    blocked = blocked.expand(-1, -1, seq_len, -1)  # (B, 1, T, T)
    if causal:
        future = torch.ones(seq_len, seq_len, dtype=torch.bool, device=attention_mask.device)
        blocked = blocked | future.triu(diagonal=1)  # keys after the query
    if window is not None:
        positions = torch.arange(seq_len, device=attention_mask.device)  # (T,)
        distance = (positions[None, :] - positions[:, None]).abs()  # (T, T): |key - query|
        blocked = blocked | (distance > window)  # keys outside the window
    zeros = torch.zeros(blocked.shape, dtype=dtype, device=attention_mask.device)
    return zeros.masked_fill(blocked, torch.finfo(dtype).min)


class Encoder(nn.Module):
    """The whole encoder: embeddings, a stack of layers, pooling and optional normalisation."""

    def __init__(self, config: EncoderConfig, attention_impl: AttentionImpl = "explicit") -> None:
        super().__init__()
        self.config = config
        self.attention_impl: AttentionImpl = attention_impl
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        causal: bool = False,
        normalize: bool | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> EncoderOutput:
        """input_ids, attention_mask, token_type_ids: (B, T) integer tensors; mask 1 = real.

        `attention_impl` overrides the encoder's default path for this call (the exporter
        asks for `sdpa` for the fast graph and `explicit` for the maps graph)."""
        impl = self.attention_impl if attention_impl is None else attention_impl
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        additive_mask = additive_attention_mask(attention_mask, causal, x.dtype)

        attentions: list[Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, additive_mask, impl, output_attentions)
            if probs is not None and output_attentions:
                attentions.append(probs)

        pooled = pool(x, attention_mask, self.config.pooling)  # (B, H)
        if self.config.normalize if normalize is None else normalize:
            pooled = F.normalize(pooled, p=2.0, dim=-1)
        return EncoderOutput(x, pooled, tuple(attentions))
