"""The families attnserve knows, and what each one is made of: one entry per `Family`.

A family is a variation of one layer (see each model's module docstring); this table says, for
each, how its `config.json` is read, which module computes it, how checkpoint tensors are named
(prefix, map, tensors deliberately unused), how its tokens are pooled without
sentence-transformers files, and which fused attention the fast graph gets at export.

Adding a family: a model module (`model/<family>.py`) whose model subclasses `EmbeddingModel`,
its config (satisfying `ModelConfig`, `model/embedding_model.py`) and weight map in
`model/<family>_config.py`, and an entry
in `ARCHITECTURES`. Nothing downstream (checkpoint loading, export, manifest, server) changes,
unless the fast graph needs a new `FusedAttention` form (`export/graphs.py` dispatches on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attnserve.model.decoder import Decoder
from attnserve.model.decoder_config import DECODER_IGNORED, DecoderConfig, decoder_weight_map
from attnserve.model.embedding_model import EmbeddingModel, ModelConfig
from attnserve.model.encoder import Encoder
from attnserve.model.encoder_config import (
    BERT_IGNORED,
    DISTILBERT_IGNORED,
    EncoderConfig,
    bert_weight_map,
    distilbert_weight_map,
)
from attnserve.model.modernbert import ModernBert
from attnserve.model.modernbert_config import (
    MODERNBERT_IGNORED,
    ModernBertConfig,
    modernbert_weight_map,
)
from attnserve.model.mpnet import MPNet
from attnserve.model.mpnet_config import MPNET_IGNORED, MPNetConfig, mpnet_weight_map
from attnserve.service.artifact import Family, Pooling

# How export fuses the fast graph's attention (export/graphs.py `specialise_attention`):
# - packed_qkv: each opset-23 Attention and its Q/K/V projections -> ONNX Runtime's
#   com.microsoft.Attention with the (B, T) padding mask (BERT-style layers, export/fusion.py);
# - causal: the standard Attention with is_causal=1 and no mask (export/causal_attention.py);
# - standard: the opset-23 Attention as exported, its (B, nh|1, T, T) additive mask carrying what
#   the family adds (a relative bias, a window).
# - packed_qkv_bias: as packed_qkv, the standard op's whole additive (B, nh, T, T) mask handed to
#   com.microsoft.Attention as its attention_bias (MPNet: padding and relative bias together).
FusedAttention = Literal["packed_qkv", "packed_qkv_bias", "causal", "standard"]


@dataclass(frozen=True)
class Architecture:
    read_config: Callable[[Path, Pooling, bool], ModelConfig]  # config.json, pooling, normalize
    build: Callable[[Any], EmbeddingModel]  # the family's config -> its model
    weight_map: Callable[[Any], dict[str, str]]  # checkpoint name -> our parameter name
    prefix: str  # what a head class puts before the base model's names (stripped)
    ignored: frozenset[str]  # checkpoint tensors deliberately unused
    default_pooling: Pooling  # without a sentence-transformers Pooling module
    fused_attention: FusedAttention


def bert_like(prefix: str) -> Architecture:
    """BERT's layers and names (BERT, and the RoBERTa family whose positions differ)."""
    return Architecture(
        read_config=EncoderConfig.from_bert_json,
        build=Encoder,
        weight_map=bert_weight_map,
        prefix=prefix,
        ignored=BERT_IGNORED,
        default_pooling=Pooling.MEAN,
        fused_attention="packed_qkv",
    )


DECODER = Architecture(
    read_config=DecoderConfig.from_hf_json,
    build=Decoder,
    weight_map=decoder_weight_map,
    prefix="model.",  # Qwen3Model inside Qwen3ForCausalLM
    ignored=DECODER_IGNORED,
    default_pooling=Pooling.LAST,
    fused_attention="causal",
)

ARCHITECTURES: dict[Family, Architecture] = {
    Family.BERT: bert_like("bert."),
    # RoBERTa's head classes (and XLM-RoBERTa's, CamemBERT's) name their base model "roberta".
    Family.ROBERTA: bert_like("roberta."),
    Family.XLM_ROBERTA: bert_like("roberta."),
    Family.CAMEMBERT: bert_like("roberta."),
    Family.DISTILBERT: Architecture(
        read_config=EncoderConfig.from_distilbert_json,
        build=Encoder,
        weight_map=distilbert_weight_map,
        prefix="distilbert.",
        ignored=DISTILBERT_IGNORED,
        default_pooling=Pooling.MEAN,
        fused_attention="packed_qkv",
    ),
    # The relative bias (MPNet) and the window (ModernBERT's local layers) ride in the additive
    # mask, which the standard Attention takes as its attention bias.
    Family.MPNET: Architecture(
        read_config=MPNetConfig.from_hf_json,
        build=MPNet,
        weight_map=mpnet_weight_map,
        prefix="mpnet.",  # MPNetModel inside MPNetForMaskedLM and the other head classes
        ignored=MPNET_IGNORED,
        default_pooling=Pooling.MEAN,
        fused_attention="standard",
    ),
    Family.MODERNBERT: Architecture(
        read_config=ModernBertConfig.from_hf_json,
        build=ModernBert,
        weight_map=modernbert_weight_map,
        prefix="model.",  # ModernBertModel inside ModernBertForMaskedLM
        ignored=MODERNBERT_IGNORED,
        default_pooling=Pooling.MEAN,
        fused_attention="standard",
    ),
    Family.QWEN3: DECODER,
    Family.QWEN2: DECODER,
}


def known_families() -> str:
    """The families this install loads, for error messages."""
    return ", ".join(family.value for family in ARCHITECTURES)


def weight_map(config: ModelConfig) -> dict[str, str]:
    """Checkpoint tensor name -> our parameter name, for every parameter the family's model owns."""
    return ARCHITECTURES[config.family].weight_map(config)
