"""Checkpoint tensor names -> our parameter names, spelled out per family.

One explicit map per family, so that loading can name every tensor that is missing, unexpected or
misshapen: silently random weights produce plausible but wrong embeddings. Which map, prefix and
ignored tensors a family uses is said in `model/families.py`.
"""

from __future__ import annotations

from attnserve.model.config import EncoderConfig
from attnserve.model.decoder_config import DecoderConfig

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
DECODER_IGNORED = frozenset({"lm_head.weight"})  # next-token logits; absent when tied


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
