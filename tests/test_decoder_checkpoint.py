"""Decoder checkpoints load by explicit names per family and fail loudly, naming what is wrong:
a tensor, a config setting attnserve does not implement, a sentence-transformers module."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from attnserve.model.checkpoint import CheckpointError, load_checkpoint

# Every test here edits a copy of the grouped-query Qwen3 checkpoint.
pytestmark = pytest.mark.parametrize("decoder_checkpoint", ["qwen3-gqa"], indirect=True)


@pytest.fixture
def checkpoint_copy(decoder_checkpoint: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "checkpoint"
    shutil.copytree(decoder_checkpoint, copy)
    return copy


def edit_tensors(directory: Path, edit: dict[str, torch.Tensor | None]) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    for name, value in edit.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    save_file(tensors, str(directory / "model.safetensors"))


def edit_json(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_a_missing_tensor_is_named(checkpoint_copy: Path) -> None:
    edit_tensors(checkpoint_copy, {"layers.1.self_attn.k_norm.weight": None})
    with pytest.raises(
        CheckpointError, match=re.escape("missing tensor(s): layers.1.self_attn.k_norm.weight")
    ):
        load_checkpoint(checkpoint_copy)


def test_an_unexpected_tensor_is_named(checkpoint_copy: Path) -> None:
    edit_tensors(checkpoint_copy, {"layers.7.mlp.up_proj.weight": torch.zeros(2, 2)})
    with pytest.raises(
        CheckpointError, match=re.escape("unexpected tensor(s): layers.7.mlp.up_proj.weight")
    ):
        load_checkpoint(checkpoint_copy)


def test_a_misshapen_tensor_is_named(checkpoint_copy: Path) -> None:
    # 2 K/V heads x 16 = 32 rows; a checkpoint with 4 K/V heads does not fit this config.
    edit_tensors(checkpoint_copy, {"layers.0.self_attn.k_proj.weight": torch.zeros(64, 64)})
    with pytest.raises(
        CheckpointError,
        match=re.escape("layers.0.self_attn.k_proj.weight has shape (64, 64), expected (32, 64)"),
    ):
        load_checkpoint(checkpoint_copy)


def test_an_lm_head_and_a_model_prefix_are_what_a_causal_lm_save_holds(
    checkpoint_copy: Path,
) -> None:
    """Qwen3ForCausalLM saves `model.`-prefixed names and, untied, an `lm_head.weight` that an
    embedding model does not use: both load to the very same weights."""
    base, _ = load_checkpoint(checkpoint_copy)
    tensors = load_file(str(checkpoint_copy / "model.safetensors"))
    prefixed = {f"model.{name}": value for name, value in tensors.items()}
    prefixed["lm_head.weight"] = torch.zeros_like(tensors["embed_tokens.weight"])
    save_file(prefixed, str(checkpoint_copy / "model.safetensors"))
    as_lm, _ = load_checkpoint(checkpoint_copy)
    for (name, ours), (_, theirs) in zip(
        base.named_parameters(), as_lm.named_parameters(), strict=True
    ):
        assert torch.equal(ours, theirs), name


def test_a_sharded_checkpoint_loads_every_shard(checkpoint_copy: Path) -> None:
    whole, _ = load_checkpoint(checkpoint_copy)
    tensors = load_file(str(checkpoint_copy / "model.safetensors"))
    (checkpoint_copy / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, members in shards.items():
        save_file({name: tensors[name] for name in members}, str(checkpoint_copy / shard))
        weight_map.update(dict.fromkeys(members, shard))
    index = {"metadata": {}, "weight_map": weight_map}
    (checkpoint_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    sharded, _ = load_checkpoint(checkpoint_copy)
    for (name, ours), (_, theirs) in zip(
        whole.named_parameters(), sharded.named_parameters(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    (checkpoint_copy / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"shard model-00002-of-00002\.safetensors"):
        load_checkpoint(checkpoint_copy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"model_type": "llama"},
            "model_type 'llama' is unsupported (attnserve loads these families: bert, roberta",
        ),
        (
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0}},
            "rotary scaling 'yarn' is unsupported",
        ),
        ({"use_sliding_window": True}, "sliding-window attention is unsupported"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu' is unsupported"),
        ({"num_key_value_heads": 3}, "num_heads 4 is not a multiple of num_kv_heads 3"),
    ],
)
def test_a_config_setting_attnserve_does_not_implement_is_refused(
    checkpoint_copy: Path, changes: dict[str, object], message: str
) -> None:
    edit_json(checkpoint_copy / "config.json", **changes)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(checkpoint_copy)


def test_a_missing_config_field_is_named(checkpoint_copy: Path) -> None:
    raw = json.loads((checkpoint_copy / "config.json").read_text())
    del raw["num_hidden_layers"]
    (checkpoint_copy / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="missing field 'num_hidden_layers'"):
        load_checkpoint(checkpoint_copy)


def test_an_unknown_sentence_transformers_module_is_refused(checkpoint_copy: Path) -> None:
    modules = json.loads((checkpoint_copy / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (checkpoint_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(CheckpointError, match=r"module 'sentence_transformers\.models\.Dense'"):
        load_checkpoint(checkpoint_copy)


def test_pooling_without_the_prompt_is_refused(checkpoint_copy: Path) -> None:
    edit_json(checkpoint_copy / "1_Pooling" / "config.json", include_prompt=False)
    with pytest.raises(CheckpointError, match="include_prompt: false"):
        load_checkpoint(checkpoint_copy)


def test_a_default_prompt_that_is_not_a_prompt_is_refused(checkpoint_copy: Path) -> None:
    edit_json(checkpoint_copy / "config_sentence_transformers.json", default_prompt_name="passage")
    with pytest.raises(CheckpointError, match="default_prompt_name 'passage' is not one of"):
        load_checkpoint(checkpoint_copy)


def test_without_sentence_transformers_files_a_decoder_pools_its_last_token(
    checkpoint_copy: Path,
) -> None:
    for name in ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        (checkpoint_copy / name).unlink()
    _, checkpoint = load_checkpoint(checkpoint_copy)
    assert checkpoint.config.pooling == "last"
    assert not checkpoint.config.normalize
    assert checkpoint.prompts == {}
    assert checkpoint.max_seq_length == 96  # the tokenizer's model_max_length
