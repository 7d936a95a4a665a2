"""ModernBERT in our model equals the reference implementations: hidden states and attention maps
to transformers' eager ModernBertModel, pooled vectors to sentence-transformers', for both test
shapes (MODERNBERT_SHAPES in tests/support/mpnet_modernbert_checkpoints.py), on texts far longer
than the local window, so that the window, the two rotary bases and the layer pattern all show."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch

from attnserve.model.checkpoint import CheckpointError, load_checkpoint
from attnserve.model.modernbert import ModernBert
from attnserve.model.modernbert_config import GLOBAL, LOCAL, ModernBertConfig
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import Pooling
from tests.support.mpnet_modernbert_checkpoints import (
    MODERNBERT_SHAPES,
    build_bpe_tokenizer,
    build_modernbert_checkpoint,
    errors_against_transformers,
    sentence_transformers_cosines,
)
from tests.support.texts import VARIED_TEXTS


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bpe_tokenizer(tmp_path_factory.mktemp("bpe") / "tokenizer.json")


@pytest.fixture(scope="module", params=sorted(MODERNBERT_SHAPES))
def modernbert_checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, bpe_file: Path
) -> Path:
    name: str = request.param
    directory = tmp_path_factory.mktemp("modernbert") / name
    return build_modernbert_checkpoint(directory, MODERNBERT_SHAPES[name], bpe_file)


def load(directory: Path) -> tuple[ModernBert, dict[str, torch.Tensor]]:
    """The model and VARIED_TEXTS as one right-padded batch."""
    model, checkpoint = load_checkpoint(directory)
    assert isinstance(model, ModernBert)
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    return model, tokenizer(VARIED_TEXTS)


def test_hidden_states_and_attention_maps_equal_transformers(modernbert_checkpoint: Path) -> None:
    model, batch = load(modernbert_checkpoint)
    lengths = batch["attention_mask"].sum(1)
    window = model.config.window
    assert lengths.max() == 96 > 4 * window  # the long text is cut at the cap, far past the window
    errors = errors_against_transformers(model, modernbert_checkpoint, batch)
    assert errors.hidden <= 1e-5
    assert max(errors.maps) <= 1e-5, errors.maps


def test_local_layers_see_only_their_window_and_global_layers_everything(
    modernbert_checkpoint: Path,
) -> None:
    model, batch = load(modernbert_checkpoint)
    shape = MODERNBERT_SHAPES[modernbert_checkpoint.name]
    expected = [GLOBAL if i % shape.global_every == 0 else LOCAL for i in range(shape.num_layers)]
    assert list(model.config.layer_types) == expected
    assert model.config.window == shape.local_attention // 2
    with torch.no_grad():
        maps = model(**batch, output_attentions=True).attentions
    seq_len = batch["input_ids"].shape[1]
    positions = torch.arange(seq_len)
    far = (positions[None, :] - positions[:, None]).abs() > model.config.window  # (T, T)
    longest = int(batch["attention_mask"].sum(1).argmax())  # a row with no padding in reach
    for layer, probs in enumerate(maps):
        beyond = probs[longest][:, far]  # (nh, pairs farther apart than the window)
        if expected[layer] == LOCAL:
            assert torch.all(beyond == 0.0), f"layer {layer}"  # exactly
        else:
            assert beyond.sum() > 1.0, f"layer {layer}"  # global: far keys carry real weight


def test_the_comparison_notices_a_wrong_window(modernbert_checkpoint: Path) -> None:
    model, batch = load(modernbert_checkpoint)
    wider = ModernBertConfig(**{**model.config.__dict__, "window": 2 * model.config.window})
    widened = ModernBert(wider)
    widened.load_state_dict(model.state_dict())
    widened.eval()
    errors = errors_against_transformers(widened, modernbert_checkpoint, batch)
    assert errors.hidden > 1e-2
    assert max(errors.maps) > 1e-2


def test_pooled_vectors_equal_sentence_transformers(modernbert_checkpoint: Path) -> None:
    model, batch = load(modernbert_checkpoint)
    shape = MODERNBERT_SHAPES[modernbert_checkpoint.name]
    assert model.config.pooling is Pooling(shape.pooling)
    assert model.config.normalize is shape.normalize
    found = sentence_transformers_cosines(model, modernbert_checkpoint, batch)
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))


def test_fused_path_equals_explicit_path(modernbert_checkpoint: Path) -> None:
    model, batch = load(modernbert_checkpoint)
    with torch.no_grad():
        explicit = model(**batch)
        fused = model(**batch, attention_impl="sdpa")
    real = batch["attention_mask"].bool()
    diff = (fused.last_hidden_state - explicit.last_hidden_state).abs()[real].max().item()
    assert diff <= 1e-5
    assert fused.attentions == ()


def test_a_padded_batch_gives_each_text_its_solo_vector(modernbert_checkpoint: Path) -> None:
    model, batch = load(modernbert_checkpoint)
    with torch.no_grad():
        together = model(**batch).pooled
        for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            ids, mask = (
                batch["input_ids"][row : row + 1, :n],
                batch["attention_mask"][row : row + 1, :n],
            )
            torch.testing.assert_close(together[row], model(ids, mask).pooled[0], atol=1e-5, rtol=0)


def test_both_config_forms_give_the_same_layers(modernbert_checkpoint: Path) -> None:
    """transformers 5 writes `layer_types` and `rope_parameters`; the published checkpoints carry
    `global_attn_every_n_layers` and `global_rope_theta` / `local_rope_theta`."""
    shape = MODERNBERT_SHAPES[modernbert_checkpoint.name]
    raw = json.loads((modernbert_checkpoint / "config.json").read_text())
    assert ("global_attn_every_n_layers" in raw) is shape.published_config
    config = ModernBertConfig.from_hf_json(modernbert_checkpoint / "config.json")
    assert (config.global_rope_theta, config.local_rope_theta) == (160_000.0, 10_000.0)
    assert config.max_tokens == raw["max_position_embeddings"]
    assert [config.is_local(i) for i in range(config.num_layers)] == [
        bool(i % shape.global_every) for i in range(shape.num_layers)
    ]


def copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, target)
    return target


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("hidden_activation", "silu", "hidden_activation 'silu' is unsupported"),
        ("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "rotary scaling"),
        ("layer_types", ["full_attention", "chunked"], "layer_types must name"),
    ],
)
def test_settings_attnserve_does_not_implement_are_refused(
    modernbert_checkpoint: Path, tmp_path: Path, setting: str, value: object, message: str
) -> None:
    directory = copy_of(modernbert_checkpoint, tmp_path)
    raw = json.loads((directory / "config.json").read_text())
    raw[setting] = value
    (directory / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(directory)


def test_missing_unexpected_and_misshapen_tensors_are_named(
    modernbert_checkpoint: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    directory = copy_of(modernbert_checkpoint, tmp_path)
    weights = directory / "model.safetensors"
    original = load_file(str(weights))
    prefix = "model." if MODERNBERT_SHAPES[modernbert_checkpoint.name].masked_lm else ""
    qkv = f"{prefix}layers.1.attn.Wqkv.weight"
    cases = {
        "missing tensor.*layers.1.attn.Wqkv.weight": {
            k: v for k, v in original.items() if k != qkv
        },
        "unexpected tensor.*layers.0.attn_norm.weight": {
            **original,
            f"{prefix}layers.0.attn_norm.weight": torch.ones(model_width(original, prefix)),
        },
        r"Wqkv.weight has shape \(": {**original, qkv: original[qkv][:-1]},
    }
    for message, tensors in cases.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(weights))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(directory)


def model_width(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    return int(tensors[f"{prefix}embeddings.tok_embeddings.weight"].shape[1])
