"""A decoder-style embedding model (Qwen3, Qwen2): masked self-attention from first principles.

Read top to bottom it follows the definition: token embeddings (no position table: positions
enter as rotations of queries and keys), then per layer, pre-norm: RMSNorm; Q/K/V projections
with fewer key/value heads than query heads (grouped-query attention); per-head RMSNorm of Q and K
(Qwen3); rotary position embeddings; scores QK^T / sqrt(d_k); the causal mask (each position
attends only to itself and earlier ones) together with the padding mask; softmax; weighted sum of
V; heads concatenated and projected by W_O; residual. Then RMSNorm, the SwiGLU feed-forward,
residual. A final RMSNorm, last-token pooling (the only position that has seen the whole text)
and optional L2 normalisation.

As in `encoder.py`, the attention (`model/attention.py`) has its explicit path (which can return
the probabilities) and PyTorch's fused `scaled_dot_product_attention` side by side; the rotary
scheme lives in `model/positions.py`, RMSNorm in `model/norms.py`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.attention import attend, merge_heads
from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.embedding_model import AttentionImpl, EmbeddingModel, ModelOutput
from attnserve.model.masks import additive_attention_mask
from attnserve.model.norms import RMSNorm
from attnserve.model.positions import RotaryEmbedding, rotate
from attnserve.model.prenorm import PreNormLayer


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

        # Fused or explicit (model/attention.py); K/V heads shared by groups of query heads.
        context, probs = attend(q, k, v, additive_mask, impl, want_probs, self.group_size)
        context = merge_heads(context)  # (B, T, nh * hs): heads concatenated
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


class DecoderLayer(PreNormLayer):
    """Pre-norm (prenorm.py's residual wiring): each sub-layer reads a normalised copy and adds
    its result to the raw stream."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = GroupedQueryAttention(config)
        self.feed_forward_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.feed_forward = SwiGLU(config)


class Decoder(EmbeddingModel):
    """The whole decoder: embeddings, causal layers, final norm, last-token pooling."""

    def __init__(self, config: DecoderConfig, attention_impl: AttentionImpl = "explicit") -> None:
        super().__init__()
        self.config: DecoderConfig = config
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
    ) -> ModelOutput:
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

        return self.finish(x, attention_mask, attentions, normalize)  # pool, normalise
