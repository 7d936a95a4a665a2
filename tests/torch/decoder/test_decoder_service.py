"""Decoders served end to end over real gRPC, with the figures of the model tests: pooled vectors
equal sentence-transformers' (prompts included), token embeddings and attention maps equal
transformers'; prompts selectable per request, counted in the limits and reported."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.cli import png_size, run_cli
from tests.support.decoders import DECODER_SHAPES, PROMPTS, QUERY_PROMPT
from tests.support.servers import ServerThread
from tests.support.texts import VARIED_TEXTS


@pytest.fixture
def decoder_client(decoder_server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(decoder_server.target) as connected:
        yield connected


@pytest.fixture(scope="module")
def st_model(decoder_checkpoint: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(decoder_checkpoint), device="cpu")


def resolved(decoder_checkpoint: Path, prompt_name: str | None) -> str:
    """The prompt name a request means: its own, or the model's default."""
    if prompt_name is not None:
        return prompt_name
    return DECODER_SHAPES[decoder_checkpoint.name].default_prompt_name or ""


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = (
        (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    )
    return similarity


@pytest.mark.parametrize("prompt_name", ["query", "document", None])
def test_served_vectors_equal_sentence_transformers(
    decoder_checkpoint: Path,
    decoder_client: EmbedderClient,
    st_model: Any,
    prompt_name: str | None,
) -> None:
    served = decoder_client.embed(VARIED_TEXTS, prompt_name=prompt_name)
    expected = st_model.encode(VARIED_TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
    assert served.pooled is not None
    assert served.pooled.shape == expected.shape
    found = cosines(served.pooled, expected)
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))
    np.testing.assert_allclose(served.pooled, expected, atol=1e-5, rtol=0)
    name = resolved(decoder_checkpoint, prompt_name)
    assert served.prompt_name == name
    prompt = PROMPTS[name] if name else ""
    features = st_model.preprocess(VARIED_TEXTS, prompt=prompt or None)
    assert served.token_counts == features["attention_mask"].sum(1).tolist()
    assert served.truncated == [False] * (len(VARIED_TEXTS) - 1) + [True]  # capped at 96
    assert (min(served.prompt_tokens) > 0) == (name == "query")


def test_served_token_embeddings_and_maps_equal_transformers(
    decoder_checkpoint: Path, decoder_client: EmbedderClient
) -> None:
    from transformers import AutoModel

    theirs = AutoModel.from_pretrained(str(decoder_checkpoint), attn_implementation="eager")
    tokenizer = ReferenceTokenizer(decoder_checkpoint / "tokenizer.json", 96)
    texts = VARIED_TEXTS[:6]
    served = decoder_client.embed(
        texts, prompt_name="query", token_embeddings=True, attention=True, normalize=False
    )
    for row, text in enumerate(texts):  # each text alone, unpadded, in transformers
        batch = tokenizer([QUERY_PROMPT + text])
        with torch.no_grad():
            expected = theirs(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_attentions=True,
            )
        n = batch["input_ids"].shape[1]
        tokens, maps = served.token_embeddings[row], served.attentions[row]
        assert tokens is not None
        assert maps is not None
        assert tokens.shape == (n, theirs.config.hidden_size)
        assert np.abs(tokens - expected.last_hidden_state[0].numpy()).max() <= 1e-5
        want = torch.stack(expected.attentions)[:, 0].numpy()  # (layers, heads, n, n)
        assert maps.shape == want.shape
        assert np.abs(maps - want).max() <= 1e-5
        assert np.all(maps[..., np.triu(np.ones((n, n), dtype=bool), k=1)] == 0.0)


def test_info_describes_the_decoder(
    decoder_checkpoint: Path, decoder_client: EmbedderClient
) -> None:
    shape = DECODER_SHAPES[decoder_checkpoint.name]
    info = decoder_client.info()
    assert (info.family, info.causal, info.pooling, info.normalize) == (
        shape.family,
        True,
        "last",
        True,
    )
    assert (info.num_layers, info.num_heads) == (shape.num_layers, shape.num_heads)
    assert dict(info.prompts) == PROMPTS
    assert info.default_prompt_name == (shape.default_prompt_name or "")
    assert info.default_max_tokens == shape.max_seq_length
    assert info.attention_maps


def test_an_unknown_prompt_name_is_invalid_argument(decoder_client: EmbedderClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        decoder_client.embed(["text"], prompt_name="passage")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "prompt_name 'passage' is unknown; this model's prompts: 'document', 'query'" in (
        caught.value.details() or ""
    )


def test_the_prompt_counts_in_the_token_limit_and_truncation_keeps_it(
    decoder_client: EmbedderClient,
) -> None:
    text = "Where does the river bank end and the money bank begin, and who decides?"
    (tokens,) = decoder_client.tokenize([text], prompt_name="query")
    prompt = [t for t in tokens if t.prompt]
    content = [t for t in tokens if not t.prompt and not t.special]
    assert "".join(QUERY_PROMPT[t.start : t.end] for t in prompt) == QUERY_PROMPT
    assert "".join(text[t.start : t.end] for t in content) == text  # offsets index the text
    assert tokens[-1].special  # the end-of-text token last-token pooling reads
    cap = len(prompt) + 1 + 3  # the prompt, <|endoftext|> and three tokens of text
    served = decoder_client.embed(
        [text], prompt_name="query", max_tokens=cap, truncate="start", token_embeddings=True
    )
    assert (served.token_counts, served.truncated, served.prompt_tokens) == (
        [cap],
        [True],
        [len(prompt)],
    )
    (kept,) = decoder_client.tokenize([text], "start", prompt_name="query", max_tokens=cap)
    assert [t.id for t in kept] == [t.id for t in [*prompt, *content[-3:], tokens[-1]]]
    with pytest.raises(grpc.RpcError) as caught:
        decoder_client.embed([text], prompt_name="query", max_tokens=len(prompt) + 1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "leaving none for the text" in (caught.value.details() or "")


def test_the_stream_takes_a_prompt_per_request(
    decoder_server: ServerThread, decoder_client: EmbedderClient
) -> None:
    texts = ["what is attention?", "attention weighs tokens"]
    requests = [
        pb.EmbedRequest(
            texts=texts, request_id=name or "none", options=pb.EmbedOptions(prompt_name=name)
        )
        for name in ("query", "")
    ]
    with grpc.insecure_channel(decoder_server.target) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
        responses = {r.request_id: r for r in stub.EmbedStream(iter(requests), timeout=60)}
    for request_id, name in (("query", "query"), ("none", "")):
        response = responses[request_id]
        assert response.prompt_name == name
        unary = decoder_client.embed(texts, prompt_name=name)
        assert unary.pooled is not None
        streamed = np.frombuffer(response.pooled.data, np.float32).reshape(unary.pooled.shape)
        np.testing.assert_allclose(streamed, unary.pooled, atol=1e-6, rtol=0)


def test_concurrent_callers_batched_together_get_their_own_vectors(
    decoder_server: ServerThread, st_model: Any
) -> None:
    texts = [
        f"question {i}: {'why ' * (i % 7)}does the {i * 3 % 11}th bank open?" for i in range(24)
    ]
    expected = st_model.encode(texts, prompt_name="query", convert_to_numpy=True)

    def ask(index: int) -> np.ndarray:
        with EmbedderClient(decoder_server.target) as own:
            pooled = own.embed([texts[index]], prompt_name="query").pooled
            assert pooled is not None
            row: np.ndarray = pooled[0]
            return row

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = np.stack(list(pool.map(ask, range(len(texts)))))
    assert cosines(answers, expected).min() >= 0.99999


def test_the_embed_command_takes_a_prompt_name(
    decoder_server: ServerThread, decoder_client: EmbedderClient, tmp_path: Path
) -> None:
    out = tmp_path / "query.npy"
    result = run_cli(
        "embed", "--target", decoder_server.target, "--prompt-name", "query", "--out", str(out),
        "what is attention?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    served = decoder_client.embed(["what is attention?"], prompt_name="query").pooled
    assert served is not None
    np.testing.assert_allclose(np.load(out), served, atol=1e-6)
    result = run_cli("embed", "--target", decoder_server.target, "--prompt-name", "x", "text")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT: prompt_name 'x' is unknown" in result.stderr


@pytest.mark.parametrize("decoder_checkpoint", ["qwen3-gqa"], indirect=True)
def test_the_attend_command_draws_the_prompted_causal_maps(
    decoder_server: ServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "map.png"
    result = run_cli(
        "attend", "--target", decoder_server.target, "--prompt-name", "query", "--layers", "0",
        "--out", str(out), "why is the sky blue?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    width, height = png_size(out)
    assert width > 0
    assert height > 0
