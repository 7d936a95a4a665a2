"""A Transformer encoder written step by step from the definition of self-attention: BERT, and
the families that keep BERT's layers (RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT).

Read top to bottom it follows the textbook: embeddings (token + position + segment), then per
layer Q/K/V projections, scores QK^T / sqrt(d_k), additive padding mask, softmax, weighted sum
of V, heads concatenated and projected by W_O, residual + LayerNorm, feed-forward, residual +
LayerNorm; finally pooling and optional L2 normalisation.

The families differ only in the embeddings: RoBERTa's positions start past the padding index
and it has one token type (`model/positions.py`); DistilBERT has no token types at all. The
attention itself (`model/attention.py`) has its explicit path (which can return the
probabilities) and PyTorch's fused `scaled_dot_product_attention` side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.attention import attend, merge_heads, split_heads
from attnserve.model.embedding_model import AttentionImpl, EmbeddingModel, ModelOutput
from attnserve.model.encoder_config import EncoderConfig
from attnserve.model.masks import additive_attention_mask
from attnserve.model.positions import absolute_position_ids, position_ids_after_padding


class Embeddings(nn.Module):
    """Token + position (+ segment) embeddings, then LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_positions, config.hidden_size)
        # DistilBERT has no segment table; RoBERTa's has one row, added to every token.
        self.segment = (
            nn.Embedding(config.type_vocab_size, config.hidden_size)
            if config.type_vocab_size
            else None
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        if self.config.positions == "after_padding":
            positions = position_ids_after_padding(attention_mask, self.config.pad_token_id)
        else:
            positions = absolute_position_ids(attention_mask)  # (1, T) or (B, T)
        x: Tensor = self.token(input_ids) + self.position(positions)  # (B, T, H)
        if self.segment is not None:
            x = x + self.segment(token_type_ids)
        normed: Tensor = self.norm(x)  # (B, T, H)
        return normed


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with residual + LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)  # W_O
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, x: Tensor, additive_mask: Tensor, impl: AttentionImpl, want_probs: bool
    ) -> tuple[Tensor, Tensor | None]:
        q = split_heads(self.query(x), self.num_heads)  # (B, nh, T, hs)
        k = split_heads(self.key(x), self.num_heads)  # (B, nh, T, hs)
        v = split_heads(self.value(x), self.num_heads)  # (B, nh, T, hs)
        context, probs = attend(q, k, v, additive_mask, impl, want_probs)  # (B, nh, T, hs)
        attended = self.out(merge_heads(context))  # (B, T, H)
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


class Encoder(EmbeddingModel):
    """The whole encoder: embeddings, a stack of layers, pooling and optional normalisation."""

    def __init__(self, config: EncoderConfig, attention_impl: AttentionImpl = "explicit") -> None:
        super().__init__()
        self.config: EncoderConfig = config
        self.attention_impl: AttentionImpl = attention_impl
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        normalize: bool | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> ModelOutput:
        """input_ids, attention_mask, token_type_ids: (B, T) integer tensors; mask 1 = real."""
        impl = self.attention_impl if attention_impl is None else attention_impl
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        additive_mask = additive_attention_mask(attention_mask, causal=False, dtype=x.dtype)

        attentions: list[Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, additive_mask, impl, output_attentions)
            if probs is not None and output_attentions:
                attentions.append(probs)

        return self.finish(x, attention_mask, attentions, normalize)  # pool, normalise
