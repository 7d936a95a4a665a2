"""MPNet: BERT's self-attention with a learned relative position bias added to the scores.

Read top to bottom it follows the encoder (`encoder.py`), with positions entering twice:
token + absolute position embeddings (positions counted past the padding index, as RoBERTa
counts them), LayerNorm; then per layer, BERT's post-norm layer unchanged: Q/K/V projections,
scores QK^T / sqrt(d_k) **+ a relative position bias** + the padding mask, softmax, weighted sum
of V, W_O, residual + LayerNorm, GELU feed-forward, residual + LayerNorm; then pooling and
optional L2 normalisation.

The one variation: a table of (buckets, heads) learned values. Each query/key pair looks up the
value of the bucket its signed distance k - q falls in (exact buckets for near keys, log-spaced
ones for far keys), the same for every layer and every text. It is a per-head (T, T) matrix, so
it simply joins the additive mask: the explicit path adds it before softmax, and the fused path
hands mask + bias to `scaled_dot_product_attention` as one attention bias.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnserve.model.embedding_model import AttentionImpl, EmbeddingModel, ModelOutput
from attnserve.model.encoder import EncoderLayer
from attnserve.model.masks import additive_attention_mask
from attnserve.model.mpnet_config import (
    PADDING_IDX,
    RELATIVE_BUCKETS,
    RELATIVE_MAX_DISTANCE,
    MPNetConfig,
)
from attnserve.model.positions import position_ids_after_padding


def relative_position_bucket(distance: Tensor) -> Tensor:
    """Signed distance k - q (any integer shape) -> bucket id in [0, 32), as MPNet buckets it.

    Keys before the query use buckets 0-15, keys after it 16-31 (the 2 halves). In each half the
    first 8 distances get a bucket each; farther ones share log-spaced buckets up to distance 128,
    beyond which all fall in the half's last bucket. The float expression is transformers' own,
    operation for operation: where the log lands on a whole number, rounding decides the bucket.
    """
    half = RELATIVE_BUCKETS // 2  # 16 buckets per side
    n = -distance  # positive: the key is before the query
    bucket = (n < 0).to(torch.long) * half  # keys after the query: the upper half
    n = n.abs()
    exact = half // 2  # distances 0..7 get their own bucket
    log_ratio = torch.log(n.float() / exact) / math.log(RELATIVE_MAX_DISTANCE / exact)
    far = exact + (log_ratio * (half - exact)).to(torch.long)
    far = far.clamp(max=half - 1)
    return bucket + torch.where(n < exact, n, far)


class RelativePositionBias(nn.Module):
    """A learned value per (distance bucket, head), shared by every layer: (1, nh, T, T)."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.table = nn.Embedding(RELATIVE_BUCKETS, config.num_heads)  # (32, nh)
        # The bucket of every distance a text can have, -(P-1)..P-1, computed once (the float
        # logs stay out of the exported graph, which only gathers): index distance + P - 1.
        longest = config.position_table_size
        distances = torch.arange(-(longest - 1), longest)  # (2P - 1,)
        self.buckets: Tensor
        self.register_buffer("buckets", relative_position_bucket(distances), persistent=False)
        self.longest = longest

    def forward(self, seq_len: int, device: torch.device) -> Tensor:
        positions = torch.arange(seq_len, device=device)  # (T,)
        distance = positions[None, :] - positions[:, None]  # (T, T): key - query
        bucket = self.buckets[distance + self.longest - 1]  # (T, T)
        bias: Tensor = self.table(bucket)  # (T, T, nh)
        return bias.permute(2, 0, 1).unsqueeze(0)  # (1, nh, T, T)


class Embeddings(nn.Module):
    """Token + absolute position embeddings (no segments), then LayerNorm."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.position_table_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        # RoBERTa's count: real tokens at 2, 3, ... (PADDING_IDX + 1 onwards), padding at 1.
        positions = position_ids_after_padding(attention_mask, PADDING_IDX)  # (B, T)
        x: Tensor = self.token(input_ids) + self.position(positions)  # (B, T, H)
        normed: Tensor = self.norm(x)
        return normed


class MPNet(EmbeddingModel):
    """The whole model: embeddings, BERT layers sharing one relative bias, pooling."""

    def __init__(self, config: MPNetConfig, attention_impl: AttentionImpl = "explicit") -> None:
        super().__init__()
        self.config: MPNetConfig = config
        self.attention_impl: AttentionImpl = attention_impl
        self.embeddings = Embeddings(config)
        self.relative_bias = RelativePositionBias(config)
        layer = config.layer_config  # BERT's sizes: the same layer, the same parameters
        self.layers = nn.ModuleList(EncoderLayer(layer) for _ in range(config.num_layers))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        normalize: bool | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> ModelOutput:
        """input_ids, attention_mask: (B, T) integer tensors; mask 1 = real token.

        `token_type_ids` is accepted and ignored (MPNet has no segments) so every family shares
        one call shape. Relative distances are column differences, so with right padding (how
        attnserve pads) every text sees the distances it would see alone.
        """
        impl = self.attention_impl if attention_impl is None else attention_impl
        x = self.embeddings(input_ids, attention_mask)  # (B, T, H)
        seq_len = input_ids.shape[1]
        padding = additive_attention_mask(attention_mask, causal=False, dtype=x.dtype)
        # One bias for every layer: padded keys at the most negative float, the others at
        # their bucket's learned value. (B, 1, T, T) + (1, nh, T, T) -> (B, nh, T, T)
        attention_bias = padding + self.relative_bias(seq_len, x.device)

        attentions: list[Tensor] = []
        for layer in self.layers:
            x, probs = layer(x, attention_bias, impl, output_attentions)
            if probs is not None and output_attentions:
                attentions.append(probs)

        return self.finish(x, attention_mask, attentions, normalize)  # pool, normalise
