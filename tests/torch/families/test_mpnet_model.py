"""MPNet in our model equals the reference implementations: hidden states and attention maps to
transformers' eager MPNetModel, pooled vectors to sentence-transformers', for both test shapes
(tests/support/mpnet_modernbert_checkpoints.py MPNET_SHAPES); the relative position bias is the one
transformers computes, and it matters (the comparison would notice it missing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch

from attnserve.model.checkpoint import CheckpointError, load_checkpoint
from attnserve.model.mpnet import MPNet, relative_position_bucket
from attnserve.model.mpnet_config import MPNetConfig
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import Pooling
from tests.support.mpnet_modernbert_checkpoints import (
    MPNET_SHAPES,
    build_mpnet_checkpoint,
    build_wordpiece_tokenizer,
    errors_against_transformers,
    sentence_transformers_cosines,
)
from tests.support.texts import VARIED_TEXTS

PAD = 1  # MPNet's <pad>


@pytest.fixture(scope="module")
def wordpiece_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wordpiece_tokenizer(tmp_path_factory.mktemp("wordpiece") / "tokenizer.json")


@pytest.fixture(scope="module", params=sorted(MPNET_SHAPES))
def mpnet_checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wordpiece_file: Path
) -> Path:
    name: str = request.param
    directory = tmp_path_factory.mktemp("mpnet") / name
    return build_mpnet_checkpoint(directory, MPNET_SHAPES[name], wordpiece_file)


def load(directory: Path) -> tuple[MPNet, ReferenceTokenizer]:
    model, checkpoint = load_checkpoint(directory)
    assert isinstance(model, MPNet)
    pad_id = model.config.pad_token_id
    return model, ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length, pad_id)


def padded_batch(tokenizer: ReferenceTokenizer) -> dict[str, torch.Tensor]:
    """VARIED_TEXTS, right-padded with MPNet's <pad> (transformers derives positions from it)."""
    batch = tokenizer(VARIED_TEXTS)
    assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == PAD)
    return batch


def test_hidden_states_and_attention_maps_equal_transformers(mpnet_checkpoint: Path) -> None:
    model, tokenizer = load(mpnet_checkpoint)
    batch = padded_batch(tokenizer)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() == 96 > lengths.min()  # mixed lengths, the long text cut at the cap
    errors = errors_against_transformers(model, mpnet_checkpoint, batch)
    assert errors.hidden <= 1e-5
    assert max(errors.maps) <= 1e-5, errors.maps
    real = batch["attention_mask"].bool()
    for probs in errors.ours:
        padded_keys = ~real[:, None, None, :].expand_as(probs)
        assert torch.all(probs[padded_keys] == 0.0)  # exactly
        # Far from uniform (unit-gain weights): a wrong bias would show in the comparison.
        assert probs.amax(-1)[real[:, None, :].expand(-1, probs.shape[1], -1)].mean() > 0.2


def test_the_comparison_notices_a_missing_relative_bias(mpnet_checkpoint: Path) -> None:
    model, tokenizer = load(mpnet_checkpoint)
    with torch.no_grad():
        model.relative_bias.table.weight.zero_()
    errors = errors_against_transformers(model, mpnet_checkpoint, padded_batch(tokenizer))
    assert errors.hidden > 1e-2
    assert max(errors.maps) > 1e-2


def test_pooled_vectors_equal_sentence_transformers(mpnet_checkpoint: Path) -> None:
    model, tokenizer = load(mpnet_checkpoint)
    shape = MPNET_SHAPES[mpnet_checkpoint.name]
    assert model.config.pooling is Pooling(shape.pooling)
    assert model.config.normalize is shape.normalize
    found = sentence_transformers_cosines(model, mpnet_checkpoint, padded_batch(tokenizer))
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))


def test_fused_path_equals_explicit_path(mpnet_checkpoint: Path) -> None:
    model, tokenizer = load(mpnet_checkpoint)
    batch = padded_batch(tokenizer)
    with torch.no_grad():
        explicit = model(**batch)
        fused = model(**batch, attention_impl="sdpa")
    real = batch["attention_mask"].bool()
    diff = (fused.last_hidden_state - explicit.last_hidden_state).abs()[real].max().item()
    assert diff <= 1e-5
    assert fused.attentions == ()


def test_a_padded_batch_gives_each_text_its_solo_vector(mpnet_checkpoint: Path) -> None:
    """Positions come from the mask, distances from columns: padding changes nothing real."""
    model, tokenizer = load(mpnet_checkpoint)
    batch = padded_batch(tokenizer)
    with torch.no_grad():
        together = model(**batch).pooled
        for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            solo = model(
                batch["input_ids"][row : row + 1, :n], batch["attention_mask"][row : row + 1, :n]
            )
            torch.testing.assert_close(together[row], solo.pooled[0], atol=1e-5, rtol=0)


def test_buckets_equal_transformers_for_every_distance_a_text_can_have() -> None:
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    distances = torch.arange(-1100, 1101)
    ours = relative_position_bucket(distances)
    theirs = MPNetEncoder.relative_position_bucket(distances)  # type: ignore[no-untyped-call]
    assert torch.equal(ours, theirs)
    # Every bucket is reached but 16: distance 0 belongs to the lower half (keys not after).
    assert set(ours.tolist()) == set(range(32)) - {16}
    # The table the model gathers from holds the same buckets.
    model = MPNet(MPNetConfig(vocab_size=10, hidden_size=8, num_layers=1, num_heads=2,
                              intermediate_size=16, position_table_size=514))  # fmt: skip
    longest = model.relative_bias.longest
    assert torch.equal(model.relative_bias.buckets, relative_position_bucket(
        torch.arange(-(longest - 1), longest)))  # fmt: skip


def test_the_token_cap_leaves_room_for_the_position_offset(mpnet_checkpoint: Path) -> None:
    _, checkpoint = load_checkpoint(mpnet_checkpoint)
    config = checkpoint.config
    assert isinstance(config, MPNetConfig)
    table = json.loads((mpnet_checkpoint / "config.json").read_text())["max_position_embeddings"]
    assert config.max_positions == table
    assert config.max_tokens == table - 2  # rows 0 and 1 are never a real token's
    assert checkpoint.max_seq_length == 96  # sentence-transformers' cap


def copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, target)
    return target


def test_a_config_asking_for_other_buckets_is_refused(
    mpnet_checkpoint: Path, tmp_path: Path
) -> None:
    directory = copy_of(mpnet_checkpoint, tmp_path)
    raw = json.loads((directory / "config.json").read_text())
    raw["relative_attention_num_buckets"] = 64
    (directory / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="relative_attention_num_buckets 64"):
        load_checkpoint(directory)


def test_missing_unexpected_and_misshapen_tensors_are_named(
    mpnet_checkpoint: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    directory = copy_of(mpnet_checkpoint, tmp_path)
    weights = directory / "model.safetensors"
    original = load_file(str(weights))
    prefix = "mpnet." if MPNET_SHAPES[mpnet_checkpoint.name].masked_lm else ""
    bias = f"{prefix}encoder.relative_attention_bias.weight"

    cases = {
        "missing tensor.*relative_attention_bias": {k: v for k, v in original.items() if k != bias},
        "unexpected tensor.*encoder.extra": {**original, f"{prefix}encoder.extra": torch.ones(1)},
        r"relative_attention_bias.weight has shape \(31,": {**original, bias: original[bias][:31]},
    }
    for message, tensors in cases.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(weights))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(directory)
