"""Served embeddings over real gRPC equal the PyTorch model's, alone, batched and concurrent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from attnserve.service.client.client import EmbedderClient
from tests.support.reference import Reference
from tests.support.servers import ServerThread, metric
from tests.support.texts import VARIED_TEXTS


def reference_embeddings(reference: Reference, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        pooled: torch.Tensor = reference.encoder(**reference.tokenizer(texts)).pooled
    return pooled


def test_single_text_equals_the_model(client: EmbedderClient, reference: Reference) -> None:
    text = "Attention lets every token look at every other token."
    served = client.embed([text])
    assert served.pooled is not None
    assert served.pooled.shape == (1, 384)
    expected = reference_embeddings(reference, [text]).numpy()
    np.testing.assert_allclose(served.pooled, expected, atol=1e-4, rtol=0)
    assert served.token_counts == [len(reference.tokenizer.tokens(text))]


def test_batch_equals_the_model_in_input_order(
    client: EmbedderClient, reference: Reference
) -> None:
    served = client.embed(VARIED_TEXTS)
    expected = reference_embeddings(reference, VARIED_TEXTS).numpy()
    assert served.pooled is not None
    np.testing.assert_allclose(served.pooled, expected, atol=1e-4, rtol=0)
    assert served.truncated == [False] * (len(VARIED_TEXTS) - 1) + [True]  # the 400-token text
    assert served.token_counts[-1] == 256  # the model's default token cap


def test_token_embeddings_equal_the_model(client: EmbedderClient, reference: Reference) -> None:
    texts = ["short one", "a somewhat longer text with more tokens in it"]
    served = client.embed(texts, token_embeddings=True, normalize=False)
    batch = reference.tokenizer(texts)
    with torch.no_grad():
        out = reference.encoder(**batch, normalize=False)
    for row, tokens in enumerate(served.token_embeddings):
        n = int(batch["attention_mask"][row].sum())
        assert tokens is not None
        assert tokens.shape == (n, 384)
        np.testing.assert_allclose(tokens, out.last_hidden_state[row, :n].numpy(), atol=1e-4)
    assert served.pooled is not None
    np.testing.assert_allclose(served.pooled, out.pooled.numpy(), atol=1e-4, rtol=0)


def test_float16_output_halves_the_bytes(client: EmbedderClient) -> None:
    full = client.embed(["precision"], dtype="float32")
    half = client.embed(["precision"], dtype="float16")
    assert half.pooled is not None
    assert full.pooled is not None
    assert half.pooled.dtype == np.float16
    np.testing.assert_allclose(half.pooled.astype(np.float32), full.pooled, atol=1e-3)


def test_pooled_off_returns_only_what_was_asked(client: EmbedderClient) -> None:
    served = client.embed(["no pooled"], pooled=False, token_embeddings=True)
    assert served.pooled is None
    assert served.token_embeddings[0] is not None


def test_sixty_four_concurrent_clients_get_their_own_results(
    server: ServerThread, reference: Reference
) -> None:
    texts = [
        f"client {i} asks about topic {i * 7 % 13} with {'many ' * (i % 9)}words" for i in range(64)
    ]
    expected = reference_embeddings(reference, texts).numpy()
    registry = server.running.assembly.metrics.registry

    def batch_totals() -> tuple[float, float]:
        count = metric(registry, "attnserve_batch_size_texts_count")
        return count, metric(registry, "attnserve_batch_size_texts_sum")

    count_before, total_before = batch_totals()

    def ask(index: int) -> np.ndarray:
        with EmbedderClient(server.target) as own:
            pooled = own.embed([texts[index]]).pooled
            assert pooled is not None
            row: np.ndarray = pooled[0]
            return row

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(ask, range(64)))
    for index, answer in enumerate(answers):
        np.testing.assert_allclose(answer, expected[index], atol=1e-4, rtol=0)
    # Merging happened: fewer model batches than texts.
    count_after, total_after = batch_totals()
    count, total = count_after - count_before, total_after - total_before
    assert total == 64
    assert total / count > 1.0, f"mean batch size {total / count:.2f}: no merging"


def test_info_reports_the_model_and_limits(client: EmbedderClient, server: ServerThread) -> None:
    info = client.info()
    assert info.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (info.hidden_size, info.num_layers, info.num_heads) == (384, 6, 12)
    assert info.pooling == "mean"
    assert info.normalize
    assert info.default_max_tokens == 256
    assert info.limits.max_tokens_per_text == 512
    assert info.limits.max_texts_per_request == server.settings.max_texts_per_request
    assert info.limits.max_attention_elements == server.settings.max_attention_elements
    assert info.attention_maps
    assert info.execution_provider == "CPUExecutionProvider"
    assert len(info.artifact_sha256) == 64


def test_tokenize_gives_offsets_into_the_text(client: EmbedderClient) -> None:
    text = "Zürich 🚀 rocks"
    (tokens,) = client.tokenize([text])
    assert tokens[0].special
    assert tokens[0].text == "[CLS]"
    assert tokens[-1].special
    assert [t.text for t in tokens[1:-1]] == ["zurich", "[UNK]", "rocks"]  # accents stripped
    assert not any(t.special for t in tokens[1:-1])
    # Offsets are code-point indices into the original text, not into the normalised one.
    assert [text[t.start : t.end] for t in tokens[1:-1]] == ["Zürich", "🚀", "rocks"]


def test_truncation_side_is_honoured(client: EmbedderClient) -> None:
    text = "alpha beta gamma delta epsilon"
    (end,) = client.tokenize([text], truncate="end")
    assert [t.text for t in end] == ["[CLS]", "alpha", "beta", "gamma", "delta", "epsilon", "[SEP]"]
    served = client.embed([text], max_tokens=4, truncate="start")
    assert served.token_counts == [4]
    assert served.truncated == [True]
