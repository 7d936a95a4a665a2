"""The BERT-like encoders' hyper-parameters in one typed place, read from their `config.json`.

BERT, RoBERTa (with XLM-RoBERTa and CamemBERT) and DistilBERT share one layer (post-norm,
GELU feed-forward) and differ in the embeddings: where positions are read (`positions`) and
whether there are token types (`type_vocab_size`, `inputs`). `Family` and `Pooling`, the
vocabulary every family shares, live in the artifact contract (`service/artifact.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attnserve.service.artifact import Family, Pooling
from attnserve.service.padding import INPUT_NAMES

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
# absolute: a learned table read at 0..T-1; after_padding: read from padding_idx + 1 (RoBERTa)
PositionScheme = Literal["absolute", "after_padding"]
ROBERTA_FAMILIES = (Family.ROBERTA, Family.XLM_ROBERTA, Family.CAMEMBERT)
ENCODER_FAMILIES = (Family.BERT, *ROBERTA_FAMILIES, Family.DISTILBERT)


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2  # 0: no token-type table at all (DistilBERT)
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_act: str = "gelu"
    pooling: Pooling = Pooling.MEAN
    normalize: bool = True
    family: Family = Family.BERT
    positions: PositionScheme = "absolute"

    def __post_init__(self) -> None:
        if self.family not in ENCODER_FAMILIES:
            known = ", ".join(f.value for f in ENCODER_FAMILIES)
            raise ValueError(f"EncoderConfig holds {known}, not {self.family}")
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is unsupported; use one of "
                f"{', '.join(SUPPORTED_ACTIVATIONS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def causal(self) -> bool:
        return False

    @property
    def max_tokens(self) -> int:
        """The most tokens a text may hold: RoBERTa's rows up to padding_idx are never read."""
        offset = self.pad_token_id + 1 if self.positions == "after_padding" else 0
        return self.max_positions - offset

    @property
    def inputs(self) -> tuple[str, ...]:
        """Only BERT feeds token types: RoBERTa's single type is row 0 for every token, and
        DistilBERT has none."""
        return INPUT_NAMES if self.family is Family.BERT else INPUT_NAMES[:2]

    @classmethod
    def from_bert_json(
        cls, path: Path, pooling: Pooling = Pooling.MEAN, normalize: bool = True
    ) -> EncoderConfig:
        """Read a Hugging Face BERT or RoBERTa-family `config.json`; pooling comes from
        sentence-transformers."""
        raw: dict[str, Any] = json.loads(path.read_text())
        family = Family(raw.get("model_type", "bert"))
        if family not in (Family.BERT, *ROBERTA_FAMILIES):
            raise ValueError(f"{path}: model_type {family.value!r} is not BERT or RoBERTa")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        roberta = family in ROBERTA_FAMILIES
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(raw.get("pad_token_id", 1 if roberta else 0) or 0),
            hidden_act=str(raw.get("hidden_act", "gelu")),
            pooling=pooling,
            normalize=normalize,
            family=family,
            positions="after_padding" if roberta else "absolute",
        )

    @classmethod
    def from_distilbert_json(
        cls, path: Path, pooling: Pooling = Pooling.MEAN, normalize: bool = True
    ) -> EncoderConfig:
        """DistilBERT names the same sizes differently (dim, n_layers, hidden_dim, ...). Its
        sinusoidal positions (`sinusoidal_pos_embds`) are a table fixed at initialisation and
        saved like a learned one, so both read the checkpoint's table."""
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["dim"]),
            num_layers=int(raw["n_layers"]),
            num_heads=int(raw["n_heads"]),
            intermediate_size=int(raw["hidden_dim"]),
            max_positions=int(raw["max_position_embeddings"]),
            type_vocab_size=0,
            layer_norm_eps=1e-12,  # fixed in DistilBERT's code, not in its config
            pad_token_id=int(raw.get("pad_token_id", 0) or 0),
            hidden_act=str(raw.get("activation", "gelu")),
            pooling=pooling,
            normalize=normalize,
            family=Family.DISTILBERT,
            positions="absolute",
        )


# Tensors a checkpoint carries that an embedding model deliberately does not use.
BERT_IGNORED = frozenset(
    {
        "embeddings.position_ids",  # a buffer holding arange(max_positions), not a weight
        "embeddings.token_type_ids",  # RoBERTa's buffer of zeros (older saves keep it)
        "pooler.dense.weight",  # BERT's next-sentence pooler: unused by mean/CLS pooling
        "pooler.dense.bias",
    }
)
DISTILBERT_IGNORED = frozenset({"embeddings.position_ids"})


def bert_weight_map(config: EncoderConfig) -> dict[str, str]:
    """BERT's names, which RoBERTa, XLM-RoBERTa and CamemBERT keep."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.token.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.segment.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    }
    per_layer = {
        "attention.self.query": "attention.query",
        "attention.self.key": "attention.key",
        "attention.self.value": "attention.value",
        "attention.output.dense": "attention.out",
        "attention.output.LayerNorm": "attention.norm",
        "intermediate.dense": "feed_forward.up",
        "output.dense": "feed_forward.down",
        "output.LayerNorm": "feed_forward.norm",
    }
    for i in range(config.num_layers):
        for theirs, ours in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names


def distilbert_weight_map(config: EncoderConfig) -> dict[str, str]:
    """DistilBERT's own names for BERT's layers; no token-type table."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.token.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    }
    per_layer = {
        "attention.q_lin": "attention.query",
        "attention.k_lin": "attention.key",
        "attention.v_lin": "attention.value",
        "attention.out_lin": "attention.out",
        "sa_layer_norm": "attention.norm",
        "ffn.lin1": "feed_forward.up",
        "ffn.lin2": "feed_forward.down",
        "output_layer_norm": "feed_forward.norm",
    }
    for i in range(config.num_layers):
        for theirs, ours in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"transformer.layer.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names
