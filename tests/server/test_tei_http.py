"""text-embeddings-inference's HTTP API over the packaged embedder: each route's answer equals
attnserve.v1's for the same texts, in TEI's JSON shape (its router's field names and defaults,
`router/src/http/types.rs`), and each refusal is TEI's error body with TEI's status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support.servers import MakeServer, ServerThread

TEXTS = ["The bank by the river", "Café naïve façade, déjà vu in Zürich", "hello"]
# TEI's Info, field for field (router/src/lib.rs `Info`).
INFO_FIELDS = {
    "model_id", "model_sha", "model_dtype", "served_model_name", "model_type",
    "max_concurrent_requests", "max_input_length", "max_batch_tokens", "max_batch_requests",
    "max_client_batch_size", "auto_truncate", "tokenization_workers", "version", "sha",
    "docker_label",
}  # fmt: skip


@pytest.fixture(scope="module")
def tei(artifact_dir: Any) -> Any:
    from tests.support.servers import server_settings

    running = ServerThread(server_settings(artifact_dir, http_port=0, warmup=False))
    yield running
    running.stop()


def call(
    server: ServerThread, path: str, body: object | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.running.http_port}{path}",
        data,
        {"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def grpc_embed(server: ServerThread, texts: list[str], **options: Any) -> Any:
    with EmbedderClient(server.target) as client:
        return client.embed(texts, **options)


def test_embed_and_the_root_route_equal_embed(tei: ServerThread) -> None:
    expected = grpc_embed(tei, TEXTS).pooled
    for path in ("/embed", "/", "/invocations"):
        status, vectors, headers = call(tei, path, {"inputs": TEXTS})
        assert status == 200, vectors
        np.testing.assert_allclose(np.array(vectors), expected, atol=1e-6)
        assert int(headers["x-compute-tokens"]) > len(TEXTS)
    status, one, _ = call(tei, "/embed", {"inputs": TEXTS[0]})
    assert status == 200
    assert np.array(one).shape == (1, 384)  # one input is still a list of one vector
    raw = grpc_embed(tei, TEXTS, normalize=False).pooled
    _, unnormalised, _ = call(tei, "/embed", {"inputs": TEXTS, "normalize": False})
    np.testing.assert_allclose(np.array(unnormalised), raw, atol=1e-5)
    _, short, _ = call(tei, "/embed", {"inputs": TEXTS, "dimensions": 64})
    cut = raw[:, :64] / np.linalg.norm(raw[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(np.array(short), cut, atol=1e-5)


def test_embed_all_and_similarity(tei: ServerThread) -> None:
    expected = grpc_embed(tei, TEXTS, pooled=False, token_embeddings=True)
    status, matrices, _ = call(tei, "/embed_all", {"inputs": TEXTS})
    assert status == 200, matrices
    for got, want in zip(matrices, expected.token_embeddings, strict=True):
        np.testing.assert_allclose(np.array(got), want, atol=1e-5)
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    status, cosines, _ = call(tei, "/similarity", body)
    assert status == 200, cosines
    pooled = grpc_embed(tei, TEXTS).pooled
    np.testing.assert_allclose(cosines, pooled[1:] @ pooled[0], atol=1e-5)


def test_tokenize_and_decode(tei: ServerThread) -> None:
    status, tokenized, _ = call(tei, "/tokenize", {"inputs": TEXTS[1]})
    assert status == 200, tokenized
    [tokens] = tokenized
    with EmbedderClient(tei.target) as client:
        [expected] = client.tokenize([TEXTS[1]])
    assert [token["id"] for token in tokens] == [token.id for token in expected]
    assert set(tokens[0]) == {"id", "text", "special", "start", "stop"}
    assert tokens[0]["special"] is True
    assert tokens[0]["start"] is None
    encoded = TEXTS[1].encode()
    for token in tokens[1:-1]:  # UTF-8 byte offsets, as TEI's (Rust's) are
        assert encoded[token["start"] : token["stop"]].decode() == token["text"]
    _, plain, _ = call(tei, "/tokenize", {"inputs": [TEXTS[0]], "add_special_tokens": False})
    assert [t["id"] for t in plain[0]] == [t.id for t in client_tokens(tei, TEXTS[0])[1:-1]]
    ids = [token["id"] for token in tokens]
    status, texts, _ = call(tei, "/decode", {"ids": ids})
    assert status == 200
    assert texts == ["cafe naive facade, deja vu in zurich"]  # the lowercasing, accent-free vocab
    _, both, _ = call(tei, "/decode", {"ids": [ids, ids[:3]], "skip_special_tokens": False})
    assert both[0].startswith("[CLS] cafe")
    assert len(both) == 2


def client_tokens(server: ServerThread, text: str) -> list[Any]:
    with EmbedderClient(server.target) as client:
        return client.tokenize([text])[0]


def test_info_has_tei_s_fields_and_the_health_routes(tei: ServerThread) -> None:
    status, info, _ = call(tei, "/info")
    assert status == 200
    assert set(info) == INFO_FIELDS
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_input_length"] == 512
    assert info["max_client_batch_size"] == 2048
    assert info["auto_truncate"] is False
    assert info["model_dtype"] == "float32"
    for path in ("/ping", "/health", "/"):
        assert call(tei, path)[0] == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "words"),
    [
        ("/embed", {"inputs": []}, 400, "Empty", "`inputs` cannot be empty"),
        ("/embed", {}, 422, "Validation", "'inputs'"),
        ("/embed", {"inputs": "x", "normalize": "yes"}, 422, "Validation", "'normalize'"),
        ("/embed", {"inputs": ["word " * 600]}, 422, "Validation", "over the limit"),
        ("/embed", {"inputs": [101, 2023]}, 422, "Validation", "check_embedding_ctx_length"),
        ("/embed", {"inputs": "x", "prompt_name": "query"}, 422, "Validation", "prompt"),
        ("/embed", {"inputs": "x", "dimensions": 0}, 422, "Validation", "'dimensions'"),
        ("/embed", {"inputs": "x", "model": "nope"}, 404, "Validation", "'nope' not found"),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 400, "Empty",
         "`inputs.sentences` cannot be empty"),
        ("/decode", {"ids": [10**9]}, 422, "Validation", "outside the vocabulary"),
        ("/decode", {"ids": []}, 400, "Empty", "`ids` cannot be empty"),
        ("/rerank", {"query": "q", "texts": ["a"]}, 422, "Validation", "does not offer rerank"),
        ("/predict", {"inputs": "a"}, 422, "Validation", "does not offer classify"),
        ("/embed_sparse", {"inputs": "a"}, 424, "Backend", "only available for SPLADE"),
    ],
)  # fmt: skip
def test_refusals_are_tei_s_error_bodies(
    tei: ServerThread, path: str, body: object, status: int, kind: str, words: str
) -> None:
    got, answer, _ = call(tei, path, body)
    assert got == status, answer
    assert set(answer) == {"error", "error_type"}
    assert answer["error_type"] == kind
    assert words in answer["error"]


def test_an_over_long_input_is_cut_when_asked_or_by_auto_truncate(
    tei: ServerThread, make_server: MakeServer
) -> None:
    long = ["word " * 600]
    status, cut, _ = call(tei, "/embed", {"inputs": long, "truncate": True})
    assert status == 200
    expected = grpc_embed(tei, long).pooled  # gRPC cuts at the end by default
    np.testing.assert_allclose(np.array(cut), expected, atol=1e-5)
    left = call(tei, "/embed", {"inputs": long, "truncate": True, "truncation_direction": "Left"})
    assert left[0] == 200
    automatic = make_server(http_port=0, auto_truncate=True)
    status, vectors, _ = call(automatic, "/embed", {"inputs": long})
    assert status == 200
    np.testing.assert_allclose(np.array(vectors), expected, atol=1e-5)
    assert call(automatic, "/info")[1]["auto_truncate"] is True
    assert call(automatic, "/embed", {"inputs": long, "truncate": False})[0] == 422
