"""OpenAI-compatible embeddings over HTTP, driven by the `openai` Python SDK as users run it.

Results equal `attnserve.v1`'s for the same texts; errors come back in OpenAI's shape with the
right HTTP status; the same bearer tokens and TLS as the gRPC port.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support.certificates import make_certificates
from tests.support.servers import MakeServer, ServerThread, metric, wait_until

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The bank by the river", "Interest rates at the bank rose again", "hello"]


@pytest.fixture
def http_server(make_server: MakeServer) -> ServerThread:
    return make_server(http_port=0)


def sdk(server: ServerThread, **options: object) -> openai.OpenAI:
    base = f"http://127.0.0.1:{server.running.http_port}/v1"
    return openai.OpenAI(base_url=base, api_key=str(options.pop("api_key", "unused")),
                         max_retries=0, **options)  # type: ignore[arg-type]  # fmt: skip


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def test_float_and_base64_embeddings_equal_the_grpc_apis(http_server: ServerThread) -> None:
    client = sdk(http_server)
    floats = client.embeddings.create(model=MODEL, input=TEXTS)
    packed = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="base64")
    with EmbedderClient(http_server.target) as grpc_client:
        expected = grpc_client.embed(TEXTS).pooled
    assert expected is not None
    got = np.array([item.embedding for item in floats.data], dtype=np.float32)
    assert [item.index for item in floats.data] == [0, 1, 2]
    assert cosines(got, expected).min() >= 0.999999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert floats.model == MODEL
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > len(TEXTS) * 3
    # The SDK hands base64 over as it came (a str where its type says list[float]).
    encoded: list[str] = [item.embedding for item in packed.data]  # type: ignore[misc]
    decoded = np.array([np.frombuffer(base64.b64decode(text), dtype="<f4") for text in encoded])
    np.testing.assert_array_equal(decoded, got)


def test_one_input_and_dimensions(http_server: ServerThread) -> None:
    client = sdk(http_server)
    one = client.embeddings.create(model=MODEL, input="hello")
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 384
    short = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=64)
    vectors = np.array([item.embedding for item in short.data])
    assert vectors.shape == (3, 64)
    with EmbedderClient(http_server.target) as grpc_client:
        full = grpc_client.embed(TEXTS, normalize=False).pooled
    assert full is not None
    cut = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)  # Matryoshka
    assert cosines(vectors, cut).min() >= 0.999999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("inputs", "extra", "status", "words"),
    [
        (["word " * 400], {}, 400, "over the limit of"),
        ([""], {}, 400, "empty"),
        ([], {}, 400, "no texts"),
        ([[101, 2023]], {}, 400, "check_embedding_ctx_length=False"),
        ([101, 2023], {}, 400, "own WordPiece tokenizer"),
        (["fine"], {"dimensions": 5000}, 400, "dimensions"),
    ],
)
def test_bad_input_gets_an_openai_shaped_error(
    http_server: ServerThread,
    inputs: list[object],
    extra: dict[str, object],
    status: int,
    words: str,
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(http_server).embeddings.create(model=MODEL, input=inputs, **extra)  # type: ignore[arg-type]
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"  # the SDK unwraps {"error": {...}}
    assert words in body["message"]
    assert "Traceback" not in body["message"]


def test_an_over_long_input_is_cut_when_the_request_asks(http_server: ServerThread) -> None:
    answer = sdk(http_server).embeddings.create(
        model=MODEL, input=["word " * 400], extra_body={"truncate": True}
    )
    assert len(answer.data[0].embedding) == 384


def test_an_unknown_model_is_not_found_and_the_models_list_names_the_served_one(
    http_server: ServerThread,
) -> None:
    client = sdk(http_server)
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "all-MiniLM-L6-v2" in str(caught.value)
    assert [model.id for model in client.models.list()] == [MODEL]
    # The manifest's full name is accepted too, as the model is often known by it.
    full = client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input="x")
    assert len(full.data) == 1


def test_health_and_the_metrics_count_the_protocol(http_server: ServerThread) -> None:
    url = f"http://127.0.0.1:{http_server.running.http_port}/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok"}
    registry = http_server.running.assembly.metrics.registry
    sdk(http_server).embeddings.create(model=MODEL, input="counted")
    labels = {"protocol": "openai", "method": "embeddings", "code": "OK"}
    assert wait_until(lambda: metric(registry, "attnserve_requests_total", **labels) == 1)


def test_bearer_tokens_and_tls_as_on_grpc(make_server: MakeServer, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    running = make_server(
        http_port=0,
        auth_tokens="s3cret",
        tls_cert=certs["server_cert"],
        tls_key=certs["server_key"],
    )
    base = f"https://localhost:{running.running.http_port}/v1"
    trusted = ssl.create_default_context(cafile=certs["ca"])
    verified = openai.DefaultHttpx2Client(verify=trusted)  # the SDK's own HTTP client
    good = openai.OpenAI(base_url=base, api_key="s3cret", http_client=verified, max_retries=0)
    assert len(good.embeddings.create(model=MODEL, input="over TLS").data) == 1
    bad = openai.OpenAI(base_url=base, api_key="wrong", http_client=verified, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.embeddings.create(model=MODEL, input="x")
    assert caught.value.status_code == 401
    plain = openai.OpenAI(
        base_url=base.replace("https", "http"), api_key="s3cret", max_retries=0, timeout=10
    )
    with pytest.raises(openai.APIError):
        plain.embeddings.create(model=MODEL, input="plaintext to a TLS port")


def test_a_request_without_a_model_gets_the_default_and_embeddings_without_v1(
    http_server: ServerThread,
) -> None:
    """As TEI, vLLM and Dify's TEI provider call it: no `model`, and `/embeddings` for a base
    URL without `/v1`; the answers equal the named model's."""
    port = http_server.running.http_port
    named = sdk(http_server).embeddings.create(model=MODEL, input=TEXTS)
    expected = np.array([item.embedding for item in named.data])
    for path in ("/v1/embeddings", "/embeddings"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            json.dumps({"input": TEXTS}).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["model"] == MODEL
        got = np.array([item["embedding"] for item in answer["data"]])
        np.testing.assert_allclose(got, expected, atol=1e-6)
    bare = openai.OpenAI(base_url=f"http://127.0.0.1:{port}", api_key="x", max_retries=0)
    assert len(bare.embeddings.create(model=MODEL, input="no /v1").data) == 1


def test_2048_inputs_in_one_request_as_openai_allows(http_server: ServerThread) -> None:
    """LangChain sends 1,000 texts per request, OpenAI's API allows 2,048: both pass; one more
    is refused with the limit named."""
    texts = [f"text number {i}" for i in range(2048)]
    answer = sdk(http_server).embeddings.create(model=MODEL, input=texts)
    assert [item.index for item in answer.data] == list(range(2048))
    with EmbedderClient(http_server.target) as grpc_client:
        expected = grpc_client.embed(texts[-3:]).pooled
    assert expected is not None
    got = np.array([item.embedding for item in answer.data[-3:]], dtype=np.float32)
    assert cosines(got, expected).min() >= 0.99999
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(http_server).embeddings.create(model=MODEL, input=[*texts, "one too many"])
    assert "at most 2048 texts per request" in str(caught.value)


def test_auto_truncate_cuts_what_asks_nothing(make_server: MakeServer) -> None:
    """--auto-truncate: a request without `truncate` is cut, as TEI's default; one that says
    `truncate: false` is still refused."""
    server = make_server(http_port=0, auto_truncate=True)
    client = sdk(server)
    answer = client.embeddings.create(model=MODEL, input=["word " * 400])
    assert answer.data[0].model_extra is not None
    assert answer.data[0].model_extra["attnserve"]["truncated"] is True
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=["word " * 400], extra_body={"truncate": False})
