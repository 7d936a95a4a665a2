"""Attention maps over gRPC: selected layers and heads, exact against the PyTorch model."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch

from attnserve.service.client.client import EmbedderClient
from tests.support.reference import Reference

TEXTS = ["The bank raised its rates.", "She sat on the river bank and watched the water."]


def model_attentions(reference: Reference, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    batch = reference.tokenizer(texts)
    with torch.no_grad():
        out = reference.encoder(**batch, output_attentions=True)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    return torch.stack(out.attentions).numpy(), lengths  # (L, B, nh, T, T)


def test_selected_layers_and_heads_equal_the_model(
    client: EmbedderClient, reference: Reference
) -> None:
    served = client.embed(TEXTS, attention=True, layers=[5, 0], heads=[3, 11, 0])
    expected, lengths = model_attentions(reference, TEXTS)
    assert served.attention_layers == [5, 0]
    assert served.attention_heads == [3, 11, 0]
    for row, maps in enumerate(served.attentions):
        n = lengths[row]
        assert maps is not None
        assert maps.shape == (2, 3, n, n)
        want = expected[[5, 0]][:, row][:, [3, 11, 0]][:, :, :n, :n]
        np.testing.assert_allclose(maps, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(maps.sum(-1), np.ones((2, 3, n)), atol=1e-5)


def test_all_layers_averaged_over_heads(client: EmbedderClient, reference: Reference) -> None:
    served = client.embed(TEXTS[:1], attention=True, average_heads=True)
    expected, lengths = model_attentions(reference, TEXTS[:1])
    n = lengths[0]
    maps = served.attentions[0]
    assert maps is not None
    assert maps.shape == (6, 1, n, n)
    np.testing.assert_allclose(maps[:, 0], expected[:, 0].mean(axis=1), atol=1e-5, rtol=0)


def test_maps_request_still_returns_the_same_embeddings(client: EmbedderClient) -> None:
    plain = client.embed(TEXTS)
    with_maps = client.embed(TEXTS, attention=True, layers=[0], heads=[0])
    assert plain.pooled is not None
    assert with_maps.pooled is not None
    np.testing.assert_allclose(with_maps.pooled, plain.pooled, atol=1e-5, rtol=0)


def test_over_the_element_limit_is_invalid_argument(client: EmbedderClient) -> None:
    long_texts = [" ".join(["token"] * 250)] * 30  # 30 x 6 x 12 x 252^2 elements, ~137 M
    with pytest.raises(grpc.RpcError) as caught:
        client.embed(long_texts, attention=True)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_attention_elements" in (caught.value.details() or "")
