"""The decoder family's hyper-parameters (Qwen3, Qwen2), read from a Hugging Face `config.json`.

Everything the architecture can vary in is a field; everything it could vary in but attnserve does
not implement (rotary scaling, sliding windows, activations other than SiLU) is refused here with
a message naming the setting, because a silently ignored setting gives plausible, wrong vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnserve.service.artifact import Family, Pooling
from attnserve.service.padding import INPUT_NAMES

DECODER_FAMILIES = (Family.QWEN3, Family.QWEN2)


@dataclass(frozen=True)
class DecoderConfig:
    family: Family = Family.QWEN3
    vocab_size: int = 151669
    hidden_size: int = 1024
    num_layers: int = 28
    num_heads: int = 16  # query heads
    num_kv_heads: int = 8  # key/value heads, each shared by num_heads // num_kv_heads queries
    head_dim: int = 128  # Qwen3 sets it explicitly: num_heads * head_dim may differ from hidden
    intermediate_size: int = 3072
    max_positions: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    qkv_bias: bool = False  # biases on the Q, K and V projections (Qwen2: yes)
    out_bias: bool = False  # a bias on W_O (Qwen3's attention_bias sets both)
    qk_norm: bool = True  # RMSNorm over each head's queries and keys before rotation (Qwen3)
    pad_token_id: int = 0
    pooling: Pooling = Pooling.LAST
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.family not in DECODER_FAMILIES:
            raise ValueError(f"DecoderConfig holds {DECODER_FAMILIES}, not {self.family}")
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim {self.head_dim} is odd: rotary embeddings rotate pairs")

    @property
    def causal(self) -> bool:
        return True

    @property
    def max_tokens(self) -> int:
        return self.max_positions

    @property
    def inputs(self) -> tuple[str, ...]:
        """A decoder has no segments: ids and the padding mask only."""
        return INPUT_NAMES[:2]

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_hf_json(
        cls, path: Path, pooling: Pooling = Pooling.LAST, normalize: bool = True
    ) -> DecoderConfig:
        """Read a Hugging Face Qwen3/Qwen2 `config.json`; pooling comes from elsewhere."""
        raw: dict[str, Any] = json.loads(path.read_text())
        family = Family(str(raw.get("model_type")))
        refuse_unsupported(path, raw)
        num_heads = int(raw["num_attention_heads"])
        hidden_size = int(raw["hidden_size"])
        if family is Family.QWEN3:
            bias = bool(raw.get("attention_bias", False))
            qkv_bias, out_bias, qk_norm = bias, bias, True
        else:  # Qwen2: biased Q/K/V, unbiased W_O, no Q/K norms
            qkv_bias, out_bias, qk_norm = True, False, False
        return cls(
            family=family,
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden_size,
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=num_heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or num_heads),
            head_dim=int(raw.get("head_dim") or hidden_size // num_heads),
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=rope_theta(raw),
            qkv_bias=qkv_bias,
            out_bias=out_bias,
            qk_norm=qk_norm,
            pad_token_id=int(raw.get("pad_token_id") or 0),
            pooling=pooling,
            normalize=normalize,
        )


def rope_theta(raw: dict[str, Any]) -> float:
    """The rotary base: `rope_parameters.rope_theta` (transformers 5) or `rope_theta` (older)."""
    parameters = raw.get("rope_parameters") or {}
    theta = parameters.get("rope_theta", raw.get("rope_theta", 10_000.0))
    return float(theta)


def refuse_unsupported(path: Path, raw: dict[str, Any]) -> None:
    act = raw.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{path}: hidden_act {act!r} is unsupported (SwiGLU uses 'silu')")
    scaling = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"{path}: rotary scaling {rope_type!r} is unsupported (only 'default')")
    if scaling.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"{path}: partial rotary embeddings are unsupported")
    if raw.get("use_sliding_window", False):
        raise ValueError(f"{path}: sliding-window attention is unsupported")
    layer_types = set(raw.get("layer_types") or ["full_attention"])
    if layer_types != {"full_attention"}:
        raise ValueError(f"{path}: layer_types {sorted(layer_types)} are unsupported")


# Next-token logits: a checkpoint may carry them; an embedding model never reads them.
DECODER_IGNORED = frozenset({"lm_head.weight"})  # next-token logits; absent when tied


def decoder_weight_map(config: DecoderConfig) -> dict[str, str]:
    """Qwen3 and Qwen2 share names; they differ in which biases and norms exist."""
    names = {"embed_tokens.weight": "embeddings.weight", "norm.weight": "norm.weight"}
    per_layer = {
        "input_layernorm.weight": "attention_norm.weight",
        "self_attn.q_proj.weight": "attention.query.weight",
        "self_attn.k_proj.weight": "attention.key.weight",
        "self_attn.v_proj.weight": "attention.value.weight",
        "self_attn.o_proj.weight": "attention.out.weight",
        "post_attention_layernorm.weight": "feed_forward_norm.weight",
        "mlp.gate_proj.weight": "feed_forward.gate.weight",
        "mlp.up_proj.weight": "feed_forward.up.weight",
        "mlp.down_proj.weight": "feed_forward.down.weight",
    }
    if config.qkv_bias:
        for theirs, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
            per_layer[f"self_attn.{theirs}.bias"] = f"attention.{ours}.bias"
    if config.out_bias:
        per_layer["self_attn.o_proj.bias"] = "attention.out.bias"
    if config.qk_norm:
        per_layer["self_attn.q_norm.weight"] = "attention.query_norm.weight"
        per_layer["self_attn.k_norm.weight"] = "attention.key_norm.weight"
    for i in range(config.num_layers):
        for theirs, ours in per_layer.items():
            names[f"layers.{i}.{theirs}"] = f"layers.{i}.{ours}"
    return names
