"""The PyTorch reference models: self-attention from first principles, for BERT encoders and
causal decoders (Qwen3, Qwen2).

This package is the numerical ground truth for everything downstream: `export/` turns it into
ONNX graphs and every parity test compares against it. It needs the `export` extra (torch).
"""

from attnserve.model.config import EncoderConfig, Family, Pooling
from attnserve.model.decoder import Decoder
from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.encoder import Encoder, EncoderOutput

__all__ = [
    "Decoder",
    "DecoderConfig",
    "Encoder",
    "EncoderConfig",
    "EncoderOutput",
    "Family",
    "Pooling",
]
