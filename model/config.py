"""The BERT encoder's hyper-parameters in one typed place, read from its `config.json`; and the
vocabulary both model families share (which family, how tokens become one vector)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Family(StrEnum):
    """Which architecture a checkpoint is: config.json's `model_type` names it."""

    BERT = "bert"  # bidirectional encoder: learned positions, post-norm LayerNorm, GELU
    QWEN3 = "qwen3"  # causal decoder: RoPE, GQA, RMSNorm (also on Q and K per head), SwiGLU
    QWEN2 = "qwen2"  # as Qwen3 without the Q/K norms, with biases on the Q/K/V projections
    MPNET = "mpnet"  # BERT's layers with a learned relative position bias added to the scores
    MODERNBERT = "modernbert"  # pre-norm, RoPE, GeGLU, global and sliding-window layers

    @property
    def causal(self) -> bool:
        """Whether each position attends only to itself and earlier ones."""
        return self in (Family.QWEN3, Family.QWEN2)


class Pooling(StrEnum):
    """How token vectors become one text vector."""

    MEAN = "mean"  # average over real (non-padding) tokens: sentence-transformers' default
    CLS = "cls"  # the first token's vector
    LAST = "last"  # the last real token's vector (decoder-style embedders)


SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_act: str = "gelu"
    pooling: Pooling = Pooling.MEAN
    normalize: bool = True
    family: Family = Family.BERT

    def __post_init__(self) -> None:
        if self.family is not Family.BERT:
            raise ValueError(f"EncoderConfig holds BERT checkpoints, not {self.family}")
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; use one of "
                f"{', '.join(SUPPORTED_ACTIVATIONS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def causal(self) -> bool:
        return False

    @classmethod
    def from_bert_json(
        cls, path: Path, pooling: Pooling = Pooling.MEAN, normalize: bool = True
    ) -> EncoderConfig:
        """Read a Hugging Face BERT `config.json`; pooling comes from sentence-transformers."""
        raw: dict[str, Any] = json.loads(path.read_text())
        model_type = raw.get("model_type", "bert")
        if model_type != "bert":
            # RoBERTa-style models offset their position ids; refuse rather than be subtly wrong.
            raise ValueError(f"{path}: model_type {model_type!r} is unsupported (only 'bert')")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(raw.get("pad_token_id", 0) or 0),
            hidden_act=str(raw.get("hidden_act", "gelu")),
            pooling=pooling,
            normalize=normalize,
        )
