"""The PyTorch reference encoder: self-attention from first principles, BERT-family weights.

This package is the numerical ground truth for everything downstream: `export/` turns it into
ONNX graphs and every parity test compares against it. It needs the `export` extra (torch).
"""

from attnserve.model.config import EncoderConfig, Pooling
from attnserve.model.encoder import Encoder, EncoderOutput

__all__ = ["Encoder", "EncoderConfig", "EncoderOutput", "Pooling"]
