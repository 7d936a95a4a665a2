"""The torch side of the tests: the tiny random encoder and the real packaged checkpoint.

Imported only by tests (and fixtures) that need torch, so the rest of the suite runs on the
serving install.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnserve.model import Encoder, EncoderConfig
from attnserve.model.checkpoint import Checkpoint, load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer

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
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length)
    return Reference(encoder, checkpoint, tokenizer)
