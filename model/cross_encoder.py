"""Loading sequence-classification checkpoints (cross-encoders: rerankers and classifiers).

A `*ForSequenceClassification` checkpoint is a family's encoder under its usual prefix plus a
head (`model/heads.py`); sentence-transformers' CrossEncoder saves exactly that, with its
activation in config_sentence_transformers.json. The encoder's tensors load through the family's
map (`checkpoint.load_state`), the head's through its own, each with the same loud errors: a
missing, unexpected or misshapen tensor names itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from attnserve.model.checkpoint import (
    Checkpoint,
    CheckpointError,
    copy_tensors,
    load_state,
    read_config,
    read_family,
    read_tensors,
)
from attnserve.model.config import EncoderConfig
from attnserve.model.heads import HEAD_NAMES, CrossEncoderModel, head_weight_map
from attnserve.model.st_config import read_max_seq_length
from attnserve.service.artifact import HeadSpec, Pooling, ScoreActivation

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
