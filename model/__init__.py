"""The PyTorch reference models: self-attention from first principles, for the BERT-like
encoders (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT) and causal decoders (Qwen3, Qwen2).

This package is the numerical ground truth for everything downstream: `export/` turns it into
ONNX graphs and every parity test compares against it. It needs the `export` extra (torch).
`model/families.py` lists the families and what each is made of.
"""

from attnserve.model.config import EncoderConfig
from attnserve.model.decoder import Decoder
from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.embedding_model import EmbeddingModel, ModelConfig, ModelOutput
from attnserve.model.encoder import Encoder
from attnserve.service.artifact import Family, Pooling

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
