"""Sequence-classification heads: a cross-encoder is an encoder whose pooling ends in logits.

A head is a variation on pooling. An embedder pools its token vectors (B, T, H) into one text
vector (B, H); a cross-encoder (a reranker, a classifier) pools the same way, by taking the first
token ([CLS], <s>), then passes that vector through one dense layer, a squashing activation and a
projection onto its labels: (B, T, H) -> (B, H) -> (B, L) logits. What varies per family is only
the tensor names and the activation:

- BERT: the pre-trained pooler (`bert.pooler.dense`, tanh), then `classifier`;
- RoBERTa, XLM-RoBERTa, CamemBERT: `classifier.dense` (tanh), then `classifier.out_proj`;
- DistilBERT: `pre_classifier` (ReLU), then `classifier`.

Dropout sits between these steps in transformers' classes; at inference it is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from attnserve.model.config import EncoderConfig
from attnserve.model.embedding_model import AttentionImpl
from attnserve.model.encoder import Encoder
from attnserve.service.artifact import Family, HeadSpec

DenseActivation = Literal["tanh", "relu"]


@dataclass(frozen=True)
class HeadNames:
    """A family's head tensors: the dense layer, the projection onto labels, their activation."""

    dense: str  # e.g. "bert.pooler.dense" (full checkpoint name, before any prefix is stripped)
    out: str
    activation: DenseActivation


ROBERTA_HEAD = HeadNames("classifier.dense", "classifier.out_proj", "tanh")
HEAD_NAMES: dict[Family, HeadNames] = {
    Family.BERT: HeadNames("bert.pooler.dense", "classifier", "tanh"),
    Family.ROBERTA: ROBERTA_HEAD,
    Family.XLM_ROBERTA: ROBERTA_HEAD,
    Family.CAMEMBERT: ROBERTA_HEAD,
    Family.DISTILBERT: HeadNames("pre_classifier", "classifier", "relu"),
}


class ClassificationHead(nn.Module):
    """The first token's vector -> dense -> activation -> one logit per label."""

    def __init__(self, hidden_size: int, num_labels: int, activation: DenseActivation) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, num_labels)
        self.activation = activation

    def forward(self, first: Tensor) -> Tensor:
        x = self.dense(first)  # (B, H)
        x = torch.tanh(x) if self.activation == "tanh" else torch.relu(x)  # (B, H)
        logits: Tensor = self.out(x)  # (B, L)
        return logits


class ScoreOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, H)
    logits: Tensor  # (B, L)
    attentions: tuple[Tensor, ...]  # per layer (B, nh, T, T); empty unless asked for


class CrossEncoderModel(nn.Module):
    """An encoder read through its first token (CLS pooling, never normalised) and a head."""

    def __init__(self, config: EncoderConfig, head: HeadSpec) -> None:
        super().__init__()
        if config.family not in HEAD_NAMES:
            known = ", ".join(family.value for family in HEAD_NAMES)
            raise ValueError(f"no sequence-classification head for {config.family} ({known})")
        self.config = config
        self.head_spec = head
        self.encoder = Encoder(config)
        names = HEAD_NAMES[config.family]
        self.head = ClassificationHead(config.hidden_size, len(head.labels), names.activation)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        attention_impl: AttentionImpl | None = None,
    ) -> ScoreOutput:
        """input_ids, attention_mask, token_type_ids: (B, T) integer tensors of the pairs."""
        out = self.encoder(
            input_ids,
            attention_mask,
            token_type_ids,
            output_attentions=output_attentions,
            normalize=False,
            attention_impl=attention_impl,
        )
        logits = self.head(out.pooled)  # (B, H) first token -> (B, L)
        return ScoreOutput(out.last_hidden_state, logits, out.attentions)


def head_weight_map(family: Family) -> dict[str, str]:
    """Checkpoint tensor name (full, prefix included) -> the head's parameter name."""
    names = HEAD_NAMES[family]
    return {
        f"{theirs}.{kind}": f"{ours}.{kind}"
        for theirs, ours in ((names.dense, "dense"), (names.out, "out"))
        for kind in ("weight", "bias")
    }
