"""Self-attention behaves as defined: rows sum to 1, masks hold, batching changes nothing."""

from __future__ import annotations

import pytest
import torch

from attnserve.model import Encoder, Pooling
from attnserve.model.attention import attend
from attnserve.model.masks import additive_attention_mask
from attnserve.model.pooling import pool


def padded_batch(lengths: list[int], vocab: int = 100) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    seq_len = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), seq_len), generator=generator)
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_attention_rows_sum_to_one_and_padded_keys_get_zero(tiny_encoder: Encoder) -> None:
    batch = padded_batch([7, 3, 5])
    with torch.no_grad():
        out = tiny_encoder(**batch, output_attentions=True)
    assert len(out.attentions) == tiny_encoder.config.num_layers
    for probs in out.attentions:
        assert probs.shape == (3, 4, 7, 7)
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, 4, 7), atol=1e-6, rtol=0)
        padded_keys = batch["attention_mask"][:, None, None, :].expand_as(probs) == 0
        assert torch.all(probs[padded_keys] == 0.0)


@pytest.mark.parametrize(("causal", "window"), [(True, None), (False, 2), (True, 1)])
def test_causal_and_window_masks_zero_exactly_the_blocked_keys(
    causal: bool, window: int | None
) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))  # (B, nh, T, hs)
    real = torch.ones(2, 6, dtype=torch.long)
    mask = additive_attention_mask(real, causal, torch.float32, window)
    _, probs = attend(q, k, v, mask, "explicit", want_probs=True)
    assert probs is not None
    distance = torch.arange(6)[None, :] - torch.arange(6)[:, None]  # key minus query
    blocked = torch.zeros(6, 6, dtype=torch.bool)
    if causal:
        blocked |= distance > 0
    if window is not None:
        blocked |= distance.abs() > window
    assert torch.all(probs[..., blocked] == 0.0)
    assert torch.all(probs[..., ~blocked] > 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 6), atol=1e-6, rtol=0)
    fused, _ = attend(q, k, v, mask, "sdpa", want_probs=False)
    torch.testing.assert_close(fused, probs @ v, atol=1e-6, rtol=0)


def test_padded_batch_gives_each_text_its_solo_embedding(tiny_encoder: Encoder) -> None:
    lengths = [9, 2, 5, 1]
    batch = padded_batch(lengths)
    with torch.no_grad():
        together = tiny_encoder(**batch)
        for row, n in enumerate(lengths):
            solo = tiny_encoder(**{k: v[row : row + 1, :n] for k, v in batch.items()})
            torch.testing.assert_close(together.pooled[row], solo.pooled[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                together.last_hidden_state[row, :n], solo.last_hidden_state[0], atol=1e-5, rtol=0
            )


def test_fused_sdpa_path_equals_explicit_path(tiny_encoder: Encoder) -> None:
    batch = padded_batch([8, 4, 6])
    with torch.no_grad():
        explicit = tiny_encoder(**batch)
        fused = tiny_encoder(**batch, attention_impl="sdpa")
    torch.testing.assert_close(
        fused.last_hidden_state, explicit.last_hidden_state, atol=1e-5, rtol=0
    )
    assert fused.attentions == ()


def test_additive_mask_uses_the_most_negative_finite_float() -> None:
    mask = additive_attention_mask(torch.tensor([[1, 1, 0]]), causal=False, dtype=torch.float32)
    assert mask.shape == (1, 1, 3, 3)
    for row in range(3):
        assert mask[0, 0, row].tolist() == [0.0, 0.0, torch.finfo(torch.float32).min]


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [
        (Pooling.MEAN, [2.0, 20.0]),  # mean of rows 1, 3 / of 10, 30 (padding ignored)
        (Pooling.CLS, [1.0, 10.0]),
        (Pooling.LAST, [3.0, 30.0]),
    ],
)
def test_pooling_ignores_padding(pooling: Pooling, expected: list[float]) -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]], [[10.0], [30.0], [-100.0]]])  # (2, 3, 1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    assert pool(hidden, mask, pooling)[:, 0].tolist() == expected


def test_normalize_gives_unit_vectors_and_can_be_turned_off(tiny_encoder: Encoder) -> None:
    batch = padded_batch([4, 6])
    with torch.no_grad():
        normed = tiny_encoder(**batch).pooled
        raw = tiny_encoder(**batch, normalize=False).pooled
    torch.testing.assert_close(normed.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(2), atol=1e-3)
