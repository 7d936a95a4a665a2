"""The decoder family (Qwen3, Qwen2) in our model equals the reference implementations: hidden
states and attention maps to transformers' eager attention, pooled vectors (prompts included) to
sentence-transformers', for every test shape (tests/support/decoders.py DECODER_SHAPES)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnserve.model import Pooling
from attnserve.model.checkpoint import Checkpoint, load_checkpoint
from attnserve.model.decoder import Decoder
from attnserve.model.decoder_config import DecoderConfig
from attnserve.model.pooling import pool
from attnserve.model.tokenization import ReferenceTokenizer
from tests.support.decoders import QUERY_PROMPT
from tests.support.texts import VARIED_TEXTS

PROMPTED = [QUERY_PROMPT + text for text in VARIED_TEXTS]


def load(directory: Path) -> tuple[Decoder, Checkpoint, ReferenceTokenizer]:
    model, checkpoint = load_checkpoint(directory)
    assert isinstance(model, Decoder)
    return model, checkpoint, ReferenceTokenizer(checkpoint.tokenizer_path, 96)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = (
        (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    )
    return similarity


def test_hidden_states_and_attention_maps_equal_transformers(decoder_checkpoint: Path) -> None:
    from transformers import AutoModel

    model, _, tokenizer = load(decoder_checkpoint)
    theirs = AutoModel.from_pretrained(str(decoder_checkpoint), attn_implementation="eager")
    batch = tokenizer(PROMPTED)  # mixed lengths, right-padded, the long text cut at 96
    assert batch["attention_mask"].sum(1).max() == 96 > batch["attention_mask"].sum(1).min()
    with torch.no_grad():
        expected = theirs(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_attentions=True,
        )
        ours = model(**batch, output_attentions=True, normalize=False)
    real = batch["attention_mask"].bool()  # (B, T)
    hidden_diff = (ours.last_hidden_state - expected.last_hidden_state).abs()[real].max().item()
    assert hidden_diff <= 1e-5
    assert len(ours.attentions) == len(expected.attentions) == model.config.num_layers
    seq_len = real.shape[1]
    future = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(diagonal=1)
    for layer, (a, b) in enumerate(zip(ours.attentions, expected.attentions, strict=True)):
        assert a.shape == b.shape == (len(PROMPTED), model.config.num_heads, seq_len, seq_len)
        rows = real[:, None, :, None].expand_as(a)  # padded query rows mean nothing in either
        assert (a - b).abs()[rows].max().item() <= 1e-5, f"layer {layer}"
        assert torch.all(a[..., future] == 0.0)  # exactly: nothing attends to a later token
        padded_keys = ~real[:, None, None, :].expand_as(a)
        assert torch.all(a[padded_keys] == 0.0)
        torch.testing.assert_close(
            a.sum(-1)[rows[..., 0]], torch.ones(1).expand(int(rows[..., 0].sum()))
        )


@pytest.mark.parametrize("prompt_name", ["query", "document", None])
def test_pooled_vectors_equal_sentence_transformers(
    decoder_checkpoint: Path, prompt_name: str | None
) -> None:
    from sentence_transformers import SentenceTransformer

    model, checkpoint, tokenizer = load(decoder_checkpoint)
    st_model = SentenceTransformer(str(decoder_checkpoint), device="cpu")
    assert st_model.max_seq_length == checkpoint.max_seq_length == 96
    assert st_model.prompts == checkpoint.prompts
    assert st_model.default_prompt_name == checkpoint.default_prompt_name
    expected = st_model.encode(VARIED_TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
    name = checkpoint.default_prompt_name if prompt_name is None else prompt_name
    prompt = checkpoint.prompts[name] if name else ""
    with torch.no_grad():
        ours = model(**tokenizer([prompt + text for text in VARIED_TEXTS])).pooled.numpy()
    assert ours.shape == expected.shape == (len(VARIED_TEXTS), model.config.hidden_size)
    found = cosines(ours, expected)
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)  # Normalize module


def test_fused_path_equals_explicit_path(decoder_checkpoint: Path) -> None:
    model, _, tokenizer = load(decoder_checkpoint)
    batch = tokenizer(VARIED_TEXTS[:6])
    with torch.no_grad():
        explicit = model(**batch)
        fused = model(**batch, attention_impl="sdpa")
    real = batch["attention_mask"].bool()
    diff = (fused.last_hidden_state - explicit.last_hidden_state).abs()[real].max().item()
    assert diff <= 1e-5
    assert fused.attentions == ()
    torch.testing.assert_close(fused.pooled, explicit.pooled, atol=1e-5, rtol=0)


def test_a_padded_batch_gives_each_text_its_solo_vector_on_either_side(
    decoder_checkpoint: Path,
) -> None:
    model, _, tokenizer = load(decoder_checkpoint)
    texts = VARIED_TEXTS[:5]
    right = tokenizer(texts)
    lengths = right["attention_mask"].sum(1)
    width = int(lengths.max())
    left = {name: torch.zeros_like(value) for name, value in right.items()}
    for row, n in enumerate(lengths.tolist()):  # the same tokens, padded before instead of after
        left["input_ids"][row, width - n :] = right["input_ids"][row, :n]
        left["attention_mask"][row, width - n :] = 1
    with torch.no_grad():
        right_pooled = model(**right).pooled
        left_pooled = model(**left).pooled
        for row, n in enumerate(lengths.tolist()):
            solo = model(
                right["input_ids"][row : row + 1, :n], right["attention_mask"][row : row + 1, :n]
            )
            torch.testing.assert_close(right_pooled[row], solo.pooled[0], atol=1e-5, rtol=0)
            # Left padding shifts every position by the same amount: rotary attention depends on
            # differences only, so the vector moves by rounding alone.
            torch.testing.assert_close(left_pooled[row], solo.pooled[0], atol=1e-5, rtol=0)


def test_last_token_pooling_finds_the_last_real_token_on_either_side() -> None:
    hidden = torch.arange(8, dtype=torch.float32).reshape(2, 4, 1)  # (B=2, T=4, H=1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert pool(hidden, right, Pooling.LAST)[:, 0].tolist() == [1.0, 7.0]
    assert pool(hidden, left, Pooling.LAST)[:, 0].tolist() == [3.0, 7.0]


def test_the_checkpoint_records_its_family_and_prompts(decoder_checkpoint: Path) -> None:
    from tests.support.decoders import DECODER_SHAPES, PROMPTS

    shape = DECODER_SHAPES[decoder_checkpoint.name]
    _, checkpoint, _ = load(decoder_checkpoint)
    config = checkpoint.config
    assert isinstance(config, DecoderConfig)
    assert checkpoint.family == shape.family
    assert config.causal
    assert config.pooling is Pooling.LAST
    assert config.normalize
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (
        shape.num_heads,
        shape.num_kv_heads,
        shape.head_dim,
    )
    assert checkpoint.prompts == PROMPTS
    assert checkpoint.default_prompt_name == shape.default_prompt_name
