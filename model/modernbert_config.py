"""What a ModernBERT checkpoint looks like: its hyper-parameters (config.json, model_type
"modernbert") and its tensor names.

ModernBERT varies BERT in many places at once: pre-norm LayerNorms without biases, rotary
positions (a different base for global and for local layers), a GeGLU feed-forward, no biases on
the projections, and layers of two kinds: global ones attend to the whole text, local ones only
to keys within a window around the query. config.json says which layer is which either as a list
(`layer_types`, what transformers 5 writes) or as a period (`global_attn_every_n_layers`, what
the published checkpoints carry); both are read. Settings attnserve does not implement (rotary
scaling, other activations) are refused by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnserve.service.artifact import Family, Pooling
from attnserve.service.padding import INPUT_NAMES

GLOBAL, LOCAL = "full_attention", "sliding_attention"  # transformers' layer type names
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh")  # the GeGLU gate's GELU, exact or tanh


@dataclass(frozen=True)
class ModernBertConfig:
    vocab_size: int = 50368
    hidden_size: int = 768
    num_layers: int = 22
    num_heads: int = 12
    intermediate_size: int = 1152  # the GeGLU's width: its input projection is twice this
    max_positions: int = 8192
    layer_types: tuple[str, ...] = ()  # GLOBAL or LOCAL per layer; empty: every 3rd global
    window: int = 64  # a local layer's query sees keys at most this far away, either side
    global_rope_theta: float = 160_000.0
    local_rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    hidden_act: str = "gelu"
    pad_token_id: int = 50283
    pooling: Pooling = Pooling.MEAN
    normalize: bool = True
    family: Family = Family.MODERNBERT

    def __post_init__(self) -> None:
        if self.family is not Family.MODERNBERT:
            raise ValueError(f"ModernBertConfig holds ModernBERT checkpoints, not {self.family}")
        if not self.layer_types:
            every_third = tuple(LOCAL if i % 3 else GLOBAL for i in range(self.num_layers))
            object.__setattr__(self, "layer_types", every_third)
        if len(self.layer_types) != self.num_layers or not set(self.layer_types) <= {
            GLOBAL,
            LOCAL,
        }:
            raise ValueError(
                f"layer_types must name {GLOBAL!r} or {LOCAL!r} for each of the "
                f"{self.num_layers} layers, not {list(self.layer_types)}"
            )
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim {self.head_dim} is odd: rotary embeddings rotate pairs")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_activation {self.hidden_act!r} is unsupported; use one of "
                f"{', '.join(ACTIVATIONS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_tokens(self) -> int:
        return self.max_positions  # rotary: no table, the trained length is the limit

    @property
    def causal(self) -> bool:
        return False

    @property
    def inputs(self) -> tuple[str, ...]:
        return INPUT_NAMES[:2]  # no token types

    def is_local(self, layer: int) -> bool:
        return self.layer_types[layer] == LOCAL

    @classmethod
    def from_hf_json(
        cls, path: Path, pooling: Pooling = Pooling.MEAN, normalize: bool = True
    ) -> ModernBertConfig:
        """Read a Hugging Face ModernBERT `config.json`; pooling comes from elsewhere."""
        raw: dict[str, Any] = json.loads(path.read_text())
        if raw.get("model_type") != Family.MODERNBERT.value:
            raise ValueError(f"{path}: model_type {raw.get('model_type')!r} is not 'modernbert'")
        num_layers = int(raw["num_hidden_layers"])
        layer_types = raw.get("layer_types")
        if layer_types is None:
            period = int(raw.get("global_attn_every_n_layers", 3))
            layer_types = [LOCAL if i % period else GLOBAL for i in range(num_layers)]
        global_theta, local_theta = rope_thetas(path, raw)
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=num_layers,
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            layer_types=tuple(str(t) for t in layer_types),
            # `local_attention` is the whole window: half of it on each side of the query.
            window=int(raw.get("local_attention", 128)) // 2,
            global_rope_theta=global_theta,
            local_rope_theta=local_theta,
            norm_eps=float(raw.get("norm_eps", 1e-5)),
            norm_bias=bool(raw.get("norm_bias", False)),
            attention_bias=bool(raw.get("attention_bias", False)),
            mlp_bias=bool(raw.get("mlp_bias", False)),
            hidden_act=str(raw.get("hidden_activation", "gelu")),
            pad_token_id=int(raw.get("pad_token_id") or 0),
            pooling=pooling,
            normalize=normalize,
        )


def rope_thetas(path: Path, raw: dict[str, Any]) -> tuple[float, float]:
    """The rotary bases of global and local layers: `rope_parameters` per layer type
    (transformers 5) or `global_rope_theta` / `local_rope_theta` (the published configs)."""
    parameters = raw.get("rope_parameters") or {}
    if raw.get("rope_scaling"):
        raise ValueError(f"{path}: rotary scaling (rope_scaling) is unsupported")
    thetas = []
    for kind, legacy, default in (
        (GLOBAL, "global_rope_theta", 160_000.0),
        (LOCAL, "local_rope_theta", 10_000.0),
    ):
        settings = parameters.get(kind) or {}
        rope_type = settings.get("rope_type", "default")
        if rope_type != "default":
            raise ValueError(f"{path}: rotary scaling {rope_type!r} is unsupported (only default)")
        thetas.append(float(settings.get("rope_theta", raw.get(legacy, default))))
    return thetas[0], thetas[1]


# Tensors a ModernBERT checkpoint carries that an embedding model does not use: the masked-LM
# head of ModernBertForMaskedLM (the published base checkpoints are saved with it).
MODERNBERT_IGNORED = frozenset(
    {
        "head.dense.weight",
        "head.dense.bias",
        "head.norm.weight",
        "head.norm.bias",
        "decoder.weight",  # tied to the token embeddings; absent when saved tied
        "decoder.bias",
    }
)


def modernbert_weight_map(config: ModernBertConfig) -> dict[str, str]:
    """Checkpoint tensor name (after the `model.` prefix) -> our parameter name."""
    kinds = ("weight", "bias")
    norm_kinds = kinds if config.norm_bias else ("weight",)
    names = {"embeddings.tok_embeddings.weight": "embeddings.token.weight"}
    for kind in norm_kinds:
        names[f"embeddings.norm.{kind}"] = f"embeddings.norm.{kind}"
        names[f"final_norm.{kind}"] = f"norm.{kind}"
    for i in range(config.num_layers):
        layer = {
            "attn.Wqkv": ("attention.qkv", config.attention_bias),
            "attn.Wo": ("attention.out", config.attention_bias),
            "mlp.Wi": ("feed_forward.up", config.mlp_bias),
            "mlp.Wo": ("feed_forward.down", config.mlp_bias),
            "mlp_norm": ("feed_forward_norm", config.norm_bias),
        }
        if i > 0:  # the first layer reads the embeddings' norm: it has no attention norm
            layer["attn_norm"] = ("attention_norm", config.norm_bias)
        for theirs, (ours, biased) in layer.items():
            for kind in kinds if biased else ("weight",):
                names[f"layers.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names
