"""bge-m3: one XLM-RoBERTa encoder, three outputs (dense, lexical weights, ColBERT vectors).

BAAI's bge-m3 reads the same token states three ways (FlagEmbedding's BGEM3FlagModel):
- dense: the first token's state (<s>), L2-normalised by the server as any CLS embedder's;
- sparse: `relu(sparse_linear(h_t))`, one weight per token (B, T); the server keeps, per token
  id, the largest weight of its occurrences and drops the special tokens (<s>, </s>, <pad>,
  <unk>): the graph answers (B, T), never a (B, V) row;
- ColBERT: `colbert_linear(h_t)` per token, L2-normalised per token (B, T, D); the server keeps
  positions 1 .. n-1 (the first token is the dense vector's, padding is nothing).

Loading: an XLM-RoBERTa checkpoint (its tensors through the family's map) with FlagEmbedding's
`sparse_linear.pt` (Linear(H, 1)) and `colbert_linear.pt` (Linear(H, D)) beside it, each a torch
state dict of `weight` and `bias`, read with weights_only (tensors, never pickled code).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from attnserve.model.checkpoint import (
    Checkpoint,
    CheckpointError,
    copy_tensors,
    load_state,
    read_config,
    read_family,
    read_tensors,
)
from attnserve.model.embedding_model import AttentionImpl
from attnserve.model.encoder import Encoder
from attnserve.model.encoder_config import ROBERTA_FAMILIES, EncoderConfig
from attnserve.model.head_checkpoint import encoder_checkpoint, require_files, special_token
from attnserve.service.artifact import Pooling

SPARSE_FILE = "sparse_linear.pt"
COLBERT_FILE = "colbert_linear.pt"


class BgeM3Output(NamedTuple):
    last_hidden_state: Tensor  # (B, T, H): the embedder's token vectors (late chunking too)
    pooled: Tensor  # (B, H) the first token's state, before normalisation
    token_weights: Tensor  # (B, T) relu(sparse_linear(h)), >= 0
    multi_vectors: Tensor  # (B, T, D) colbert_linear(h), unit rows (position 0 included)


class BgeM3Model(nn.Module):
    def __init__(self, config: EncoderConfig, colbert_dim: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.sparse = nn.Linear(config.hidden_size, 1)
        self.colbert = nn.Linear(config.hidden_size, colbert_dim)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        attention_impl: AttentionImpl | None = None,
    ) -> BgeM3Output:
        out = self.encoder(
            input_ids, attention_mask, token_type_ids, normalize=False,
            attention_impl=attention_impl,
        )  # fmt: skip
        hidden = out.last_hidden_state  # (B, T, H)
        token_weights = torch.relu(self.sparse(hidden)).squeeze(-1)  # (B, T)
        vectors = F.normalize(self.colbert(hidden), p=2.0, dim=-1)  # (B, T, D)
        return BgeM3Output(hidden, hidden[:, 0], token_weights, vectors)


def is_bge_m3(directory: Path) -> bool:
    """FlagEmbedding's two head files beside the checkpoint."""
    return (directory / SPARSE_FILE).is_file() and (directory / COLBERT_FILE).is_file()


def read_linear(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or pickled-code file: say which
        raise CheckpointError(f"{path}: not a torch state dict of tensors ({exc})") from exc
    if not isinstance(state, dict) or set(state) != {"weight", "bias"}:
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: expected a Linear's weight and bias, found {found}")
    return state


def load_bge_m3(directory: Path) -> tuple[BgeM3Model, Checkpoint]:
    require_files(directory, SPARSE_FILE, COLBERT_FILE)
    family = read_family(directory / "config.json")
    if family not in ROBERTA_FAMILIES:
        raise CheckpointError(f"{directory}: bge-m3 is an XLM-RoBERTa, not {family.value}")
    config = read_config(directory, family, Pooling.CLS, True)
    assert isinstance(config, EncoderConfig)
    sparse, colbert = read_linear(directory / SPARSE_FILE), read_linear(directory / COLBERT_FILE)
    model = BgeM3Model(config, int(colbert["weight"].shape[0]))
    params = dict(model.named_parameters())
    for name, state in (("sparse", sparse), ("colbert", colbert)):
        mapping = {kind: f"{name}.{kind}" for kind in ("weight", "bias")}
        copy_tensors(mapping, state, params, f" ({name}_linear.pt)")
    load_state(model.encoder, read_tensors(directory))
    model.eval()
    return model, encoder_checkpoint(directory, config)


def read_dropped_ids(directory: Path) -> tuple[int, ...]:
    """The ids FlagEmbedding never reports: the tokenizer's cls, eos, pad and unk tokens."""
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    found = (special_token(directory, role) for role in ("cls", "eos", "pad", "unk"))
    ids = {tokenizer.token_to_id(token) for token in found if token}
    return tuple(sorted(i for i in ids if i is not None))
