"""The torch side of the tests: the tiny random encoder, the real packaged checkpoint and tiny
random decoder checkpoints (Qwen3, Qwen2) built with transformers.

Imported only by tests (and fixtures) that need torch, so the rest of the suite runs on the
serving install.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from attnserve.model import Encoder, EncoderConfig
from attnserve.model.checkpoint import Checkpoint, load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer
from tests.support.decoders import EOS, PROMPTS, DecoderShape

TINY_CONFIG = EncoderConfig(
    vocab_size=100,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_positions=64,
)


@dataclass(frozen=True)
class Reference:
    encoder: Encoder
    checkpoint: Checkpoint
    tokenizer: ReferenceTokenizer


def load_reference() -> Reference:
    encoder, checkpoint = load_checkpoint()
    assert isinstance(encoder, Encoder)  # the packaged all-MiniLM-L6-v2
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length)
    return Reference(encoder, checkpoint, tokenizer)


# --- decoders (Qwen3, Qwen2): tiny random checkpoints built here, saved as users save them -----


def build_decoder_checkpoint(directory: Path, shape: DecoderShape, tokenizer_file: Path) -> Path:
    """A random checkpoint saved by transformers' `save_pretrained`, with the tokenizer and the
    sentence-transformers files (last-token pooling, Normalize, prompts) of an embedding model."""
    import torch
    from transformers import (
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen2Model,
        Qwen3Config,
        Qwen3ForCausalLM,
        Qwen3Model,
    )

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    eos = tokenizer.token_to_id(EOS)
    common: dict[str, Any] = {
        "vocab_size": tokenizer.get_vocab_size() + 8,  # spare rows, as real checkpoints have
        "hidden_size": shape.hidden_size,
        "intermediate_size": 2 * shape.hidden_size,
        "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads,
        "max_position_embeddings": 256,
        "initializer_range": 0.1,  # big enough that attention is far from uniform
        "tie_word_embeddings": shape.tie_word_embeddings,
        "eos_token_id": eos,
        "pad_token_id": eos,
    }
    if shape.family == "qwen3":
        config: Any = Qwen3Config(head_dim=shape.head_dim, **common)
        model_class: Any = Qwen3ForCausalLM if shape.causal_lm else Qwen3Model
    else:
        config = Qwen2Config(**common)
        model_class = Qwen2ForCausalLM if shape.causal_lm else Qwen2Model
    torch.manual_seed(0)
    model = model_class(config)
    with torch.no_grad():  # norms at exactly 1 and biases at 0 would hide mixed-up weights
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(1.0, 0.2)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    shutil.copy(tokenizer_file, directory / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": EOS,
        "padding_side": shape.padding_side,
        "model_max_length": shape.max_seq_length,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    if shape.st_files == "legacy":
        write_legacy_st_files(directory, shape)
    else:
        write_st_files_by_sentence_transformers(directory, shape)
    return directory


def write_legacy_st_files(directory: Path, shape: DecoderShape) -> None:
    """modules.json, 1_Pooling and the prompts, in the format Qwen3-Embedding ships."""
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir()
    pooling = {
        "word_embedding_dimension": shape.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (directory / "2_Normalize").mkdir()
    st_config = {"prompts": PROMPTS, "default_prompt_name": shape.default_prompt_name}
    (directory / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    sbert = {"max_seq_length": shape.max_seq_length, "do_lower_case": False}
    (directory / "sentence_bert_config.json").write_text(json.dumps(sbert))


def write_st_files_by_sentence_transformers(directory: Path, shape: DecoderShape) -> None:
    """Let sentence-transformers 6 write its own files, keep them, keep transformers' weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    transformer = Transformer(str(directory), max_seq_length=shape.max_seq_length)
    pooling = Pooling(shape.hidden_size, pooling_mode="lasttoken")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        prompts=PROMPTS,
        default_prompt_name=shape.default_prompt_name,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as scratch:
        model.save(scratch)
        for name in ("modules.json", "config_sentence_transformers.json", "tokenizer_config.json"):
            shutil.copy(Path(scratch) / name, directory / name)
        for folder in ("1_Pooling", "2_Normalize"):
            shutil.copytree(Path(scratch) / folder, directory / folder)
