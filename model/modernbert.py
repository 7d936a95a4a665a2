"""ModernBERT: a pre-norm encoder with rotary positions and alternating global and local
(sliding-window) self-attention.

Read top to bottom it follows the definition: token embeddings (no position table: positions
enter as rotations of queries and keys) and LayerNorm; then per layer, pre-norm: LayerNorm
(none in the first layer, which reads the embeddings' norm); Q/K/V from one packed projection;
rotary embeddings; scores QK^T / sqrt(d_k); the padding mask and, **in a local layer, the window
mask** (keys more than `window` positions from the query are blocked, on either side); softmax;
weighted sum of V; heads concatenated and projected by W_O; residual. Then LayerNorm, the GeGLU
feed-forward, residual. A final LayerNorm, pooling and optional L2 normalisation. No biases
anywhere unless config.json asks for them.

The one variation from the encoder's attention is which mask a layer adds: every n-th layer
(global) takes the padding mask, the others (local) the padding mask with the window's blocks.
Global and local layers also rotate with different bases. As in `encoder.py`, the explicit path
(which can return the probabilities) and PyTorch's fused `scaled_dot_product_attention` sit side
by side; the fused one takes the window through the same additive mask.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from attnserve.model.attention import attend, merge_heads
from attnserve.model.embedding_model import AttentionImpl, EmbeddingModel, ModelOutput
from attnserve.model.masks import additive_attention_mask
from attnserve.model.modernbert_config import ModernBertConfig
from attnserve.model.positions import RotaryEmbedding, rotate
from attnserve.model.prenorm import PreNormLayer


class Embeddings(nn.Module):
    """Token embeddings, then LayerNorm: positions enter later, as rotations."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, input_ids: Tensor) -> Tensor:
        normed: Tensor = self.norm(self.token(input_ids))  # (B, T, H)
        return normed


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions; the mask decides global or local."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        hidden, bias = config.hidden_size, config.attention_bias
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=bias)  # Q, K and V stacked: (3H, H)
        self.out = nn.Linear(hidden, hidden, bias=bias)  # W_O

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
        qkv = self.qkv(x).view(batch, seq_len, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # (B, T, nh, hs) each
        q = rotate(q.transpose(1, 2), cos, sin)  # (B, nh, T, hs)
        k = rotate(k.transpose(1, 2), cos, sin)  # (B, nh, T, hs)
        v = v.transpose(1, 2)  # (B, nh, T, hs)

        # Global or local is all in the mask: a local layer's blocks keys outside its window.
        context, probs = attend(q, k, v, additive_mask, impl, want_probs)  # (B, nh, T, hs)
        context = merge_heads(context)  # (B, T, H): heads concatenated
        attended: Tensor = self.out(context)  # (B, T, H)
        return attended, probs


class GeGLU(nn.Module):
    """The gated feed-forward: down(gelu(value) * gate), value and gate from one projection."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        size, bias = config.intermediate_size, config.mlp_bias
        self.up = nn.Linear(config.hidden_size, 2 * size, bias=bias)  # value and gate: (2I, H)
        self.down = nn.Linear(size, config.hidden_size, bias=bias)
        self.approximate = "none" if config.hidden_act == "gelu" else "tanh"

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)  # (B, T, I) each
        hidden = F.gelu(value, approximate=self.approximate) * gate  # (B, T, I)
        out: Tensor = self.down(hidden)  # (B, T, H)
        return out


class ModernBertLayer(PreNormLayer):
    """Pre-norm (prenorm.py's residual wiring): each sub-layer reads a normalised copy and adds
    its result to the raw stream."""

    def __init__(self, config: ModernBertConfig, index: int) -> None:
        super().__init__()
        norm = (config.hidden_size, config.norm_eps)
        # The first layer's input is the embeddings' LayerNorm already: no second norm.
        self.attention_norm: nn.Module = (
            nn.LayerNorm(*norm, bias=config.norm_bias) if index > 0 else nn.Identity()
        )
        self.attention = SelfAttention(config)
        self.feed_forward_norm = nn.LayerNorm(*norm, bias=config.norm_bias)
        self.feed_forward = GeGLU(config)
        self.local = config.is_local(index)


class ModernBert(EmbeddingModel):
    """The whole model: embeddings, global and local layers, final norm, pooling."""

    def __init__(
        self, config: ModernBertConfig, attention_impl: AttentionImpl = "explicit"
    ) -> None:
        super().__init__()
        self.config: ModernBertConfig = config
        self.attention_impl: AttentionImpl = attention_impl
        self.embeddings = Embeddings(config)
        self.global_rotary = RotaryEmbedding(config.head_dim, config.global_rope_theta)
        self.local_rotary = RotaryEmbedding(config.head_dim, config.local_rope_theta)
        self.layers = nn.ModuleList(ModernBertLayer(config, i) for i in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

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

        `token_type_ids` is accepted and ignored (ModernBERT has no segments) so every family
        shares one call shape. Positions count from each row's first column: with right padding
        (how attnserve pads) every text's tokens sit at 0..n-1 whatever else is in the batch.
        """
        impl = self.attention_impl if attention_impl is None else attention_impl
        x = self.embeddings(input_ids)  # (B, T, H)
        seq_len = input_ids.shape[1]
        global_mask = additive_attention_mask(attention_mask, causal=False, dtype=x.dtype)
        local_mask = additive_attention_mask(
            attention_mask, causal=False, dtype=x.dtype, window=self.config.window
        )  # (B, 1, T, T) each
        global_angles = self.global_rotary(seq_len, x.device)  # (T, hs) cos and sin
        local_angles = self.local_rotary(seq_len, x.device)

        attentions: list[Tensor] = []
        for layer in self.layers:
            mask, (cos, sin) = (
                (local_mask, local_angles) if layer.local else (global_mask, global_angles)
            )
            x, probs = layer(x, mask, cos, sin, impl, output_attentions)
            if probs is not None and output_attentions:
                attentions.append(probs)
        x = self.norm(x)  # (B, T, H)

        return self.finish(x, attention_mask, attentions, normalize)  # pool, normalise
