"""The PyTorch reference models: self-attention from first principles, for the BERT-like
encoders (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT) and causal decoders (Qwen3, Qwen2).

This package is the numerical ground truth for everything downstream: `export/` turns it into
ONNX graphs and every parity test compares against it. It needs the `export` extra (torch).
`model/families.py` lists the families and what each is made of.

The names below are imported when first read, not with the package: `attnserve.model.cli`
registers `embed-local` on every `attnserve` start, and importing the package must not import
torch for it (2 s on 2 cores; service/cli.py says why registering stays cheap).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnserve.model.decoder import Decoder
    from attnserve.model.decoder_config import DecoderConfig
    from attnserve.model.embedding_model import EmbeddingModel, ModelConfig, ModelOutput
    from attnserve.model.encoder import Encoder
    from attnserve.model.encoder_config import EncoderConfig
    from attnserve.service.artifact import Family, Pooling

# Each exported name -> the module that defines it.
HOMES = {
    "Decoder": "attnserve.model.decoder",
    "DecoderConfig": "attnserve.model.decoder_config",
    "EmbeddingModel": "attnserve.model.embedding_model",
    "Encoder": "attnserve.model.encoder",
    "EncoderConfig": "attnserve.model.encoder_config",
    "Family": "attnserve.service.artifact",
    "ModelConfig": "attnserve.model.embedding_model",
    "ModelOutput": "attnserve.model.embedding_model",
    "Pooling": "attnserve.service.artifact",
}

__all__ = [
    "Decoder",
    "DecoderConfig",
    "EmbeddingModel",
    "Encoder",
    "EncoderConfig",
    "Family",
    "ModelConfig",
    "ModelOutput",
    "Pooling",
]


def __getattr__(name: str) -> object:
    home = HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
