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

Loading: a `*ForSequenceClassification` checkpoint is a family's encoder under its usual prefix
plus this head; sentence-transformers' CrossEncoder saves exactly that, with its activation in
config_sentence_transformers.json. The encoder's tensors load through the family's map
(`checkpoint.load_state`), the head's through its own, each with the same loud errors: a missing,
unexpected or misshapen tensor names itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
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
from attnserve.model.encoder_config import EncoderConfig
from attnserve.model.st_config import read_max_seq_length
from attnserve.service.artifact import Family, HeadSpec, Pooling, ScoreActivation

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


# Loading.
CLASSIFIER_SUFFIX = "ForSequenceClassification"
# sentence-transformers' activation_fn (a dotted torch class) -> what the head's answer applies.
ST_ACTIVATIONS: dict[str, ScoreActivation] = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Softmax": "softmax",
}


def is_sequence_classifier(directory: Path) -> bool:
    """Whether config.json names a `*ForSequenceClassification` architecture."""
    path = directory / "config.json"
    if not path.is_file():
        return False
    architectures = json.loads(path.read_text()).get("architectures") or []
    return any(str(name).endswith(CLASSIFIER_SUFFIX) for name in architectures)


def st_activation(directory: Path, raw: dict[str, Any]) -> str | None:
    """The activation CrossEncoder saved: config_sentence_transformers.json (v5+), config.json's
    `sentence_transformers` (v4) or `sbert_ce_default_activation_function` (older)."""
    st_file = directory / "config_sentence_transformers.json"
    if st_file.is_file():
        found = json.loads(st_file.read_text()).get("activation_fn")
        if found:
            return str(found)
    nested = raw.get("sentence_transformers") or {}
    found = nested.get("activation_fn") or raw.get("sbert_ce_default_activation_function")
    return str(found) if found else None


def read_head(directory: Path) -> HeadSpec:
    """Labels (id2label, in id order), multi-label or not, and the default activation: one
    logit keeps CrossEncoder's saved activation (sigmoid unless it saved another); several are
    a softmax over labels, or a sigmoid per label where the config says multi-label."""
    path = directory / "config.json"
    raw: dict[str, Any] = json.loads(path.read_text())
    id2label = raw.get("id2label") or {
        str(i): f"LABEL_{i}" for i in range(raw.get("num_labels", 2))
    }
    try:
        ordered = sorted((int(key), str(name)) for key, name in id2label.items())
    except ValueError as exc:
        raise CheckpointError(f"{path}: id2label keys must be label ids: {id2label}") from exc
    if [key for key, _ in ordered] != list(range(len(ordered))):
        raise CheckpointError(f"{path}: id2label must number labels 0..N-1: {id2label}")
    labels = tuple(name for _, name in ordered)
    multi_label = raw.get("problem_type") == "multi_label_classification"
    activation: ScoreActivation = "sigmoid" if multi_label or len(labels) == 1 else "softmax"
    saved = st_activation(directory, raw)
    if saved is not None and len(labels) == 1:
        if saved not in ST_ACTIVATIONS:
            raise CheckpointError(
                f"{directory}: activation_fn {saved!r} is unsupported "
                f"(attnserve applies {', '.join(ST_ACTIVATIONS)})"
            )
        activation = ST_ACTIVATIONS[saved]
    return HeadSpec(labels=labels, multi_label=multi_label, activation=activation)


def load_head_state(model: CrossEncoderModel, tensors: dict[str, torch.Tensor]) -> None:
    mapping = head_weight_map(model.config.family)
    params = dict(model.head.named_parameters())
    assert set(mapping.values()) == set(params), "head_weight_map out of sync with the head"
    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CheckpointError(f"checkpoint is missing head tensor(s): {', '.join(missing)}")
    copy_tensors(mapping, tensors, params, f" (labels: {len(model.head_spec.labels)})")


def load_cross_encoder(directory: Path) -> tuple[CrossEncoderModel, Checkpoint, HeadSpec]:
    """Build a cross-encoder from a sequence-classification checkpoint directory."""
    for required in ("config.json", "tokenizer.json"):
        if not (directory / required).is_file():
            raise CheckpointError(f"{directory}: {required} not found")
    family = read_family(directory / "config.json")
    if family not in HEAD_NAMES:
        known = ", ".join(f.value for f in HEAD_NAMES)
        raise CheckpointError(
            f"{directory}: sequence classification is supported for {known}, not {family.value}"
        )
    config = read_config(directory, family, Pooling.CLS, False)  # the head reads the 1st token
    assert isinstance(config, EncoderConfig)
    head = read_head(directory)
    model = CrossEncoderModel(config, head)
    tensors = read_tensors(directory)
    head_names = set(head_weight_map(family))
    load_head_state(model, {k: v for k, v in tensors.items() if k in head_names})
    load_state(model.encoder, {k: v for k, v in tensors.items() if k not in head_names})
    model.eval()
    cap = read_max_seq_length(directory) or config.max_tokens
    checkpoint = Checkpoint(
        directory=directory,
        name=directory.name,
        config=config,
        tokenizer_path=directory / "tokenizer.json",
        max_seq_length=min(cap, config.max_tokens),
    )
    return model, checkpoint, head
