"""What an MPNet checkpoint looks like: its hyper-parameters (config.json, model_type "mpnet") and
its tensor names.

MPNet is BERT's post-norm layer with two changes in where positions enter: the absolute table is
indexed past the padding index (RoBERTa's offset) and a learned relative position bias, one
value per head and distance bucket, shared by all layers, is added to the attention scores.
What transformers' MPNet fixes in code rather than reading from config.json (the padding index
1, 32 buckets, distances up to 128) is fixed here too, and a config.json that asks otherwise is
refused: transformers would silently ignore the setting and so would the vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnserve.model.encoder_config import SUPPORTED_ACTIVATIONS, EncoderConfig
from attnserve.service.artifact import Family, Pooling
from attnserve.service.padding import INPUT_NAMES

# Fixed by MPNet's code, not by its config.json (transformers' MPNetEmbeddings / MPNetEncoder).
PADDING_IDX = 1  # position ids start after it: the first real token sits at position 2
RELATIVE_BUCKETS = 32  # distance buckets (half for keys before the query, half after)
RELATIVE_MAX_DISTANCE = 128  # distances beyond it share the last bucket of their side


@dataclass(frozen=True)
class MPNetConfig:
    vocab_size: int = 30527
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    position_table_size: int = 514  # rows of the absolute table, 2 of them before any token
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 1
    hidden_act: str = "gelu"
    pooling: Pooling = Pooling.MEAN
    normalize: bool = True
    family: Family = Family.MPNET

    def __post_init__(self) -> None:
        if self.family is not Family.MPNET:
            raise ValueError(f"MPNetConfig holds MPNet checkpoints, not {self.family}")
        # The layer's own checks (heads divide the width, a known activation) run here too.
        _ = self.layer_config

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_positions(self) -> int:
        return self.position_table_size

    @property
    def max_tokens(self) -> int:
        """Tokens a text can hold: the table less the rows before the first position."""
        return self.position_table_size - PADDING_IDX - 1

    @property
    def causal(self) -> bool:
        return False

    @property
    def inputs(self) -> tuple[str, ...]:
        return INPUT_NAMES[:2]  # no token types

    @property
    def layer_config(self) -> EncoderConfig:
        """MPNet's layers are BERT's layers: the sizes they are built with."""
        return EncoderConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_positions=self.position_table_size,
            type_vocab_size=1,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            hidden_act=self.hidden_act,
        )

    @classmethod
    def from_hf_json(
        cls, path: Path, pooling: Pooling = Pooling.MEAN, normalize: bool = True
    ) -> MPNetConfig:
        """Read a Hugging Face MPNet `config.json`; pooling comes from sentence-transformers."""
        raw: dict[str, Any] = json.loads(path.read_text())
        if raw.get("model_type") != Family.MPNET.value:
            raise ValueError(f"{path}: model_type {raw.get('model_type')!r} is not 'mpnet'")
        buckets = int(raw.get("relative_attention_num_buckets", RELATIVE_BUCKETS))
        if buckets != RELATIVE_BUCKETS:
            raise ValueError(
                f"{path}: relative_attention_num_buckets {buckets} is unsupported: MPNet's code "
                f"buckets distances into {RELATIVE_BUCKETS} whatever config.json says"
            )
        act = str(raw.get("hidden_act", "gelu"))
        if act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"{path}: hidden_act {act!r} is unsupported")
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            position_table_size=int(raw["max_position_embeddings"]),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(raw.get("pad_token_id", PADDING_IDX)),
            hidden_act=act,
            pooling=pooling,
            normalize=normalize,
        )


# Tensors an MPNet checkpoint carries that an embedding model deliberately does not use.
MPNET_IGNORED = frozenset(
    {
        "embeddings.position_ids",  # a buffer holding arange(table size), not a weight
        "pooler.dense.weight",  # the next-sentence-style pooler: unused by mean/CLS pooling
        "pooler.dense.bias",
        # MPNetForMaskedLM's head (the decoder weight is tied to the token embeddings)
        "lm_head.dense.weight",
        "lm_head.dense.bias",
        "lm_head.layer_norm.weight",
        "lm_head.layer_norm.bias",
        "lm_head.decoder.weight",
        "lm_head.decoder.bias",
        "lm_head.bias",
    }
)


def mpnet_weight_map(config: MPNetConfig) -> dict[str, str]:
    """Checkpoint tensor name (after the `mpnet.` prefix) -> our parameter name."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.token.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
        "encoder.relative_attention_bias.weight": "relative_bias.table.weight",
    }
    per_layer = {
        "attention.attn.q": "attention.query",
        "attention.attn.k": "attention.key",
        "attention.attn.v": "attention.value",
        "attention.attn.o": "attention.out",
        "attention.LayerNorm": "attention.norm",
        "intermediate.dense": "feed_forward.up",
        "output.dense": "feed_forward.down",
        "output.LayerNorm": "feed_forward.norm",
    }
    for i in range(config.num_layers):
        for theirs, ours in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names
