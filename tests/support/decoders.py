"""The test decoders: their shapes (built with transformers by `reference.py`) and a small
Qwen-like byte-level BPE tokenizer trained here (no download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from attnserve.service.corpus import varied_corpus

# The instruction prompt of the test decoders, shaped like Qwen3-Embedding's query prompt.
QUERY_PROMPT = "Instruct: Given a question, retrieve passages that answer it\nQuery:"
PROMPTS = {"query": QUERY_PROMPT, "document": ""}
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class DecoderShape:
    family: Literal["qwen3", "qwen2"]
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    causal_lm: bool  # saved from *ForCausalLM: "model." prefixes, an LM head unless tied
    tie_word_embeddings: bool
    padding_side: Literal["left", "right"]  # how sentence-transformers pads it
    st_files: Literal["legacy", "saved"]  # written like Qwen3-Embedding's, or by ST 6 itself
    default_prompt_name: str | None
    max_seq_length: int = 96


DECODER_SHAPES = {
    # Qwen3Model, 4 query heads sharing 2 K/V heads, left-padded by sentence-transformers.
    "qwen3-gqa": DecoderShape("qwen3", 64, 2, 4, 2, 16, False, False, "left", "legacy", None),
    # Qwen3ForCausalLM with tied embeddings, 6 query heads on one K/V head (multi-query), head
    # size 16 x 6 heads = 96 != hidden 48 (as Qwen3's own sizes), and a default prompt.
    "qwen3-tied-mqa": DecoderShape("qwen3", 48, 3, 6, 1, 16, True, True, "right", "saved", "query"),
    # Qwen2ForCausalLM with its own LM head (unused, ignored), biased Q/K/V, no Q/K norms.
    "qwen2": DecoderShape("qwen2", 64, 2, 4, 2, 16, True, False, "right", "legacy", None),
}


# Qwen2/Qwen3's pre-tokenisation: transformers rebuilds it for any qwen2/qwen3 checkpoint,
# whatever tokenizer.json says, so a test tokenizer must use it to be read the same way.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The shape whose artifact also carries the int8 and fp16 graphs (the others skip them: time).
FULL_EXPORT_SHAPE = "qwen3-gqa"


def build_bpe_tokenizer(path: Path, vocab_size: int = 512) -> Path:
    """A small byte-level BPE tokenizer built like Qwen's (NFC, Qwen's split, byte-level BPE)
    and trained here on the varied corpus (no download). It appends an end-of-text token to
    every text as Qwen3-Embedding's does: the token whose vector last-token pooling takes."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([QUERY_PROMPT, *varied_corpus(400)], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, tokenizer.token_to_id(EOS))]
    )
    tokenizer.save(str(path))
    return path
