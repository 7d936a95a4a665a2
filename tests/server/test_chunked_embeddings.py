"""Chunked embeddings on the packaged model, through every API: a text over its window is the
token-weighted mean of its windows embedded independently; a text within its window is
unchanged; the overlap is honoured; max_document_tokens cuts or refuses; a document's windows
count as texts; per-token vectors of a chunked text are refused clearly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc as oip_grpc
from attnserve.service import wire
from attnserve.service.client.client import EmbedderClient
from attnserve.service.server.tasks.windows import window_starts
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc as pb_grpc
from tests.support.servers import MakeServer, ServerThread

MODEL = "all-MiniLM-L6-v2"
# Words that are one word piece each (the test checks it through Tokenize), so a window's
# tokens are exactly a window of words and can be embedded on their own as a text.
WORDS = (
    "the river bank water money city house light green stone music night school paper "
    "market power winter garden story field"
).split()
DOCUMENT = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(300))  # 302 tokens
WINDOW = 64  # max_tokens: [CLS] + 62 words + [SEP]


def stub(server: ServerThread) -> tuple[grpc.Channel, pb_grpc.EmbedderStub]:
    channel = grpc.insecure_channel(server.target)
    return channel, pb_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]


def embed(server: ServerThread, texts: list[str], **options: object) -> pb.EmbedResponse:
    channel, embedder = stub(server)
    with channel:
        request = pb.EmbedRequest(texts=texts, options=pb.EmbedOptions(**options))  # type: ignore[arg-type]
        response: pb.EmbedResponse = embedder.Embed(request, timeout=60)
        return response


def pooled(response: pb.EmbedResponse) -> np.ndarray:
    return np.asarray(wire.decode(response.pooled))


def refusal(server: ServerThread, texts: list[str], **options: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        embed(server, texts, **options)
    return caught.value


def independent(server: ServerThread, text: str, window: int, overlap: int) -> np.ndarray:
    """The chunked vector computed outside the server's chunking: the windows of words (each
    word one token), each embedded as its own text without chunking and unnormalised, averaged
    with each window's token count as its weight, then normalised as the model does."""
    words = text.split()
    room = window - 2  # [CLS] and [SEP] in every window
    slices = [words[s : s + room] for s in window_starts(len(words), room, overlap)]
    response = embed(server, [" ".join(piece) for piece in slices], normalize=False, chunking=False)
    weights = np.array([result.token_count for result in response.results], dtype=np.float64)
    assert weights.tolist() == [len(piece) + 2 for piece in slices]
    mean = (pooled(response).astype(np.float64) * weights[:, None]).sum(0) / weights.sum()
    return np.asarray(mean / np.linalg.norm(mean))


def test_every_word_is_one_token(server: ServerThread) -> None:
    channel, embedder = stub(server)
    with channel:
        answer = embedder.Tokenize(pb.TokenizeRequest(texts=[DOCUMENT], max_tokens=512))
    tokens = [token.text for token in answer.texts[0].tokens]
    assert tokens == ["[CLS]", *DOCUMENT.split(), "[SEP]"]


@pytest.mark.parametrize("overlap", [0, 16])
def test_a_chunked_vector_is_the_token_weighted_mean_of_its_windows(
    server: ServerThread, overlap: int
) -> None:
    response = embed(
        server, [DOCUMENT, "hello"], chunking=True, max_tokens=WINDOW, chunk_overlap=overlap
    )
    expected = independent(server, DOCUMENT, WINDOW, overlap)
    np.testing.assert_allclose(pooled(response)[0], expected, atol=1e-5)
    long, short = response.results
    starts = window_starts(300, WINDOW - 2, overlap)  # the overlap is honoured
    assert long.windows == len(starts) == (5 if overlap == 0 else 7)
    assert long.token_count == 302
    assert not long.truncated
    assert long.window_tokens == sum(min(62, 300 - s) + 2 for s in starts)
    assert (short.windows, short.window_tokens, short.token_count) == (1, 3, 3)


def test_texts_within_their_window_are_unchanged_by_chunking(server: ServerThread) -> None:
    fits = " ".join(DOCUMENT.split()[: WINDOW - 2])  # exactly one window
    texts = ["hello", "The bank by the river", fits]
    plain = embed(server, texts, max_tokens=WINDOW)
    chunked = embed(server, texts, max_tokens=WINDOW, chunking=True)
    np.testing.assert_allclose(pooled(chunked), pooled(plain), atol=1e-6)
    for before, after in zip(plain.results, chunked.results, strict=True):
        assert after.windows == 1
        assert after.window_tokens == after.token_count
        assert after.token_count == before.token_count
        assert not after.truncated


def test_the_typed_client_asks_for_chunking_and_reads_the_windows(server: ServerThread) -> None:
    with EmbedderClient(server.target) as client:
        served = client.embed([DOCUMENT, "hello"], max_tokens=WINDOW, chunking=True)
        plain = client.embed([DOCUMENT], max_tokens=WINDOW)  # the server's default: off
    assert served.windows == [5, 1]
    assert served.token_counts == [302, 3]
    assert served.pooled is not None
    np.testing.assert_allclose(
        served.pooled[0], independent(server, DOCUMENT, WINDOW, 0), atol=1e-5
    )
    assert plain.windows == [1]
    assert plain.truncated == [True]


def test_without_chunking_the_same_text_is_truncated_to_its_window(server: ServerThread) -> None:
    response = embed(server, [DOCUMENT], max_tokens=WINDOW, chunking=False)
    assert response.results[0].truncated
    assert response.results[0].token_count == WINDOW


def test_per_token_vectors_of_a_chunked_text_are_refused(server: ServerThread) -> None:
    error = refusal(server, [DOCUMENT], chunking=True, max_tokens=WINDOW, token_embeddings=True)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "text 0 runs as 5 windows" in (error.details() or "")  # the default: no overlap
    # ... while a text within one window may have them.
    ok = embed(server, ["hello"], chunking=True, max_tokens=WINDOW, token_embeddings=True)
    assert list(ok.results[0].token_embeddings.shape) == [3, 384]


def test_an_overlap_of_half_a_window_is_refused(server: ServerThread) -> None:
    error = refusal(server, ["hello"], chunking=True, max_tokens=WINDOW, chunk_overlap=31)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "chunk_overlap 31 is too large" in (error.details() or "")


def test_max_document_tokens_refuses_or_cuts_and_windows_count_as_texts(
    make_server: MakeServer,
) -> None:
    server = make_server(max_document_tokens=200, max_texts_per_request=4)
    error = refusal(server, [DOCUMENT], chunking=True, max_tokens=WINDOW, truncate=pb.TRUNCATE_NONE)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "302 tokens, over max_document_tokens of 200" in (error.details() or "")
    cut = embed(server, [DOCUMENT], chunking=True, max_tokens=WINDOW, chunk_overlap=0)
    (result,) = cut.results
    assert result.truncated
    assert result.token_count == 200
    assert result.windows == 4
    kept = " ".join(DOCUMENT.split()[:198])  # the end cut: the start kept
    np.testing.assert_allclose(pooled(cut)[0], independent(server, kept, WINDOW, 0), atol=1e-5)
    # Two documents of 4 windows are 8 texts: over max_texts_per_request (4).
    error = refusal(server, [kept, kept], chunking=True, max_tokens=WINDOW, chunk_overlap=0)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "8 windows, over the limit of 4 texts per request" in (error.details() or "")
    channel, embedder = stub(server)
    with channel:
        limits = embedder.Info(pb.InfoRequest()).limits
    assert limits.max_document_tokens == 200


def test_the_server_default_chunks_and_info_says_so(make_server: MakeServer) -> None:
    server = make_server(chunking=True, chunk_overlap_tokens=16, http_port=0)
    channel, embedder = stub(server)
    with channel:
        info = embedder.Info(pb.InfoRequest())
    assert info.chunking
    assert info.chunk_overlap == 16
    default = embed(server, [DOCUMENT], max_tokens=WINDOW)
    assert default.results[0].windows == 7  # 16 tokens of overlap
    np.testing.assert_allclose(
        pooled(default)[0], independent(server, DOCUMENT, WINDOW, 16), atol=1e-5
    )
    off = embed(server, [DOCUMENT], max_tokens=WINDOW, chunking=False)
    assert off.results[0].windows == 1
    assert off.results[0].truncated


def http_post(server: ServerThread, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{server.running.http_port}/v1/embeddings"
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            loaded: dict[str, object] = json.loads(answer.read())
            return answer.status, loaded
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_openai_http_chunks_on_request_and_refuses_past_the_document_limit(
    make_server: MakeServer,
) -> None:
    server = make_server(http_port=0, max_document_tokens=512)
    status, body = http_post(
        server, {"model": MODEL, "input": [DOCUMENT, "hello"], "chunking": True}
    )
    assert status == 200, body
    data = body["data"]
    assert isinstance(data, list)
    assert [item["attnserve"]["windows"] for item in data] == [2, 1]  # windows of 256 (the default)
    grpc_answer = embed(server, [DOCUMENT], chunking=True)
    np.testing.assert_allclose(np.array(data[0]["embedding"]), pooled(grpc_answer)[0], atol=1e-6)
    status, body = http_post(server, {"model": MODEL, "input": DOCUMENT})  # no chunking
    assert status == 400
    status, body = http_post(
        server, {"model": MODEL, "input": DOCUMENT * 2, "chunking": True, "chunk_overlap": 0}
    )
    assert status == 400
    assert "over max_document_tokens of 512" in json.dumps(body)
    status, body = http_post(server, {"model": MODEL, "input": "a", "chunking": "yes"})
    assert status == 400
    assert "'chunking' must be true or false" in json.dumps(body)


def test_oip_takes_chunking_as_a_parameter(server: ServerThread) -> None:
    request = oip.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(DOCUMENT.encode())
    request.parameters["chunking"].bool_param = True
    request.parameters["chunk_overlap"].int64_param = 16
    with grpc.insecure_channel(server.target) as channel:
        inference = oip_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = inference.ModelInfer(request, timeout=60)
    got = np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
    expected = pooled(embed(server, [DOCUMENT], chunking=True, chunk_overlap=16))[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    windows_of_256 = independent(server, DOCUMENT, 256, 16)
    np.testing.assert_allclose(got, windows_of_256, atol=1e-5)
