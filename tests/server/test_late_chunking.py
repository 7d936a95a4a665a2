"""Late chunking on the packaged model, over a real server: attnserve.v1's EmbedChunks through
the typed client, and `POST /v1/late_chunking` through a plain HTTP client.

The judge is the server's own full run: Embed with token_embeddings on the same document gives
the token vectors, Tokenize gives their offsets, and each chunk is pooled here by hand (the
mean over the chunk's own tokens, then the model's normalisation). A server that embedded the
chunks on their own, pooled the wrong tokens or counted offsets in bytes would fail.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient, Token
from tests.support import ROOT
from tests.support.servers import ServerThread, server_settings

DOCUMENT = (
    "The bank by the river flooded in spring. Interest rates at the bank rose again; "
    "savers were pleased. Café naïve façade — déjà vu in Zürich. 東京は日本の首都です。 "
    "The river then fell, and the bank's clerks went fishing."
)
SENTENCES = [(0, 40), (41, 79), (80, 100), (101, 139), (140, 151), (152, 208)]
LONG = " ".join(["Attention is all you need, they said, and the encoder listened."] * 40)
MAX_DOCUMENTS = 4


@pytest.fixture(scope="module")
def chunk_server(artifact_dir: Path) -> Iterator[ServerThread]:
    running = ServerThread(
        server_settings(
            artifact_dir,
            http_port=0,
            warmup=False,
            max_late_chunking_documents=MAX_DOCUMENTS,
            max_chunks_per_document=64,
        )
    )
    yield running
    running.stop()


@pytest.fixture
def chunk_client(chunk_server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(chunk_server.target) as connected:
        yield connected


def full_run(
    client: EmbedderClient, text: str, truncate: str = "end"
) -> tuple[np.ndarray, list[Token]]:
    """The document's token vectors (n, H) and its tokens with offsets, as the server ran it."""
    served = client.embed([text], token_embeddings=True, truncate=truncate)  # type: ignore[arg-type]
    vectors = served.token_embeddings[0]
    assert vectors is not None
    tokens = client.tokenize([text], truncate=truncate)[0]  # type: ignore[arg-type]
    assert len(tokens) == vectors.shape[0]
    return np.asarray(vectors, dtype=np.float64), tokens


def by_hand(vectors: np.ndarray, members: list[int]) -> np.ndarray:
    mean = vectors[members].mean(axis=0)
    return np.asarray(mean / np.linalg.norm(mean))  # all-MiniLM-L6-v2 normalises


def overlapping(tokens: list[Token], start: int, end: int) -> list[int]:
    return [i for i, t in enumerate(tokens) if not t.special and t.start < end and t.end > start]


def test_each_chunk_is_the_mean_of_the_full_runs_token_vectors_over_its_span(
    chunk_client: EmbedderClient,
) -> None:
    # Sentences, a span cut inside words ("bank" .. "rat"), an overlapping one, the whole text.
    spans = [*SENTENCES, (6, 62), (20, 120), (0, len(DOCUMENT))]
    (document,) = chunk_client.embed_chunks([DOCUMENT], spans=[spans])
    vectors, tokens = full_run(chunk_client, DOCUMENT)
    assert document.token_count == len(tokens)
    assert not document.truncated
    for chunk, (start, end) in zip(document.chunks, spans, strict=True):
        members = overlapping(tokens, start, end)
        assert (chunk.start, chunk.end, chunk.token_count) == (start, end, len(members))
        assert chunk.vector is not None
        assert not chunk.truncated
        np.testing.assert_allclose(chunk.vector, by_hand(vectors, members), atol=1e-5)
    # Context matters: a sentence pooled in its document is not the sentence embedded alone.
    alone = chunk_client.embed([DOCUMENT[41:79]]).pooled
    assert alone is not None
    assert document.chunks[1].vector is not None
    assert float(alone[0] @ document.chunks[1].vector) < 0.999


def test_every_n_tokens_chunks_the_documents_own_tokens_in_order(
    chunk_client: EmbedderClient,
) -> None:
    documents = chunk_client.embed_chunks([DOCUMENT, "a short one"], tokens_per_chunk=7)
    for text, document in zip([DOCUMENT, "a short one"], documents, strict=True):
        vectors, tokens = full_run(chunk_client, text)
        own = [i for i, token in enumerate(tokens) if not token.special]
        groups = [own[i : i + 7] for i in range(0, len(own), 7)]
        assert len(document.chunks) == len(groups)
        for chunk, group in zip(document.chunks, groups, strict=True):
            assert (chunk.start, chunk.end) == (tokens[group[0]].start, tokens[group[-1]].end)
            assert chunk.vector is not None
            np.testing.assert_allclose(chunk.vector, by_hand(vectors, group), atol=1e-5)


def test_a_document_over_the_cap_is_refused_unless_the_request_asks_to_cut_it(
    chunk_client: EmbedderClient,
) -> None:
    vectors, tokens = full_run(chunk_client, LONG)  # cut at the model's default 256 tokens
    kept_end = tokens[-2].end  # the last token before [SEP]
    spans = [(0, 30), (kept_end + 10, kept_end + 40), (len(LONG) - 20, len(LONG))]
    with pytest.raises(grpc.RpcError) as refused:
        chunk_client.embed_chunks([LONG], spans=[spans])
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(r"document 0 has \d+ tokens, over the limit of 256", refused.value.details())
    (document,) = chunk_client.embed_chunks([LONG], spans=[spans], truncate="end")
    assert document.truncated
    assert document.token_count == len(tokens) == 256
    first, *outside = document.chunks
    assert first.vector is not None
    assert not first.truncated
    expected = by_hand(vectors, overlapping(tokens, 0, 30))
    np.testing.assert_allclose(first.vector, expected, atol=1e-5)
    assert [(c.vector, c.token_count, c.truncated) for c in outside] == [(None, 0, False)] * 2


def test_a_chunk_cut_in_two_by_the_cap_pools_the_part_that_was_run(
    chunk_client: EmbedderClient,
) -> None:
    vectors, tokens = full_run(chunk_client, LONG)
    last = tokens[-2]  # the last token before [SEP]
    span = (last.start - 30, last.end + 30)
    (document,) = chunk_client.embed_chunks([LONG], spans=[[span]], truncate="end")
    (chunk,) = document.chunks
    assert chunk.truncated
    assert chunk.vector is not None
    expected = by_hand(vectors, overlapping(tokens, *span))
    np.testing.assert_allclose(chunk.vector, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        ({"documents": [{"text": DOCUMENT, "spans": [[10, 5]]}]}, "the span is reversed"),
        ({"documents": [{"text": DOCUMENT, "spans": [[7, 7]]}]}, "the span is empty"),
        ({"documents": [{"text": "short", "spans": [[0, 9]]}]}, "past the document's 5 char"),
        ({"documents": [{"text": "a   b", "spans": [[1, 4]]}]}, "(1..4) covers no token"),
        ({"documents": [{"text": DOCUMENT}]}, "give either chunk spans or tokens_per_chunk"),
        ({"documents": []}, "the request has no documents"),
        (
            {"documents": [{"text": "x", "tokens_per_chunk": 1}] * (MAX_DOCUMENTS + 1)},
            f"at most {MAX_DOCUMENTS} documents per late-chunking request",
        ),
        (
            {"documents": [{"text": DOCUMENT, "spans": [[0, 1]] * 65}]},
            "65 chunks, over the limit of 64 per document",
        ),
    ],
)
def test_bad_requests_are_invalid_argument_on_grpc_and_400_over_http(
    chunk_server: ServerThread,
    chunk_client: EmbedderClient,
    request_body: dict[str, Any],
    words: str,
) -> None:
    documents = request_body["documents"]
    with pytest.raises(grpc.RpcError) as refused:
        chunk_client.embed_chunks(
            [document["text"] for document in documents],
            spans=[[tuple(span) for span in document.get("spans", [])] for document in documents],
            tokens_per_chunk=documents[0].get("tokens_per_chunk", 0) if documents else 0,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert words in str(refused.value.details())
    status, body = post(chunk_server, request_body)
    assert status == 400
    assert words in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


def post(server: ServerThread, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v1/late_chunking with the standard library's HTTP client."""
    url = f"http://127.0.0.1:{server.running.http_port}/v1/late_chunking"
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_http_route_answers_the_same_vectors_as_grpc(
    chunk_server: ServerThread, chunk_client: EmbedderClient
) -> None:
    spans = [list(span) for span in SENTENCES]
    status, body = post(
        chunk_server,
        {
            "documents": [
                {"text": DOCUMENT, "spans": spans},
                {"text": LONG, "tokens_per_chunk": 100},
            ],
            "truncate": True,
            "encoding_format": "base64",
        },
    )
    assert status == 200, body
    expected = chunk_client.embed_chunks([DOCUMENT], spans=[SENTENCES])[0]
    first, second = body["data"]
    assert body["model"] == "all-MiniLM-L6-v2"
    assert [(c["start"], c["end"]) for c in first["chunks"]] == SENTENCES
    for chunk, want in zip(first["chunks"], expected.chunks, strict=True):
        got = np.frombuffer(base64.b64decode(chunk["embedding"]), dtype="<f4")
        assert want.vector is not None
        np.testing.assert_allclose(got, want.vector, atol=1e-6)
    # The long document was cut at 256 tokens: its chunks past the cut have no vector.
    assert second["truncated"]
    assert second["token_count"] == 256
    # 640 tokens of its own in 7 chunks; 254 were run: the third chunk is cut, 4 are outside.
    assert [c["outside"] for c in second["chunks"]] == [False] * 3 + [True] * 4
    assert [c["truncated"] for c in second["chunks"]] == [False, False, True] + [False] * 4
    assert second["chunks"][-1]["embedding"] is None
    assert body["usage"]["total_tokens"] == first["token_count"] + 256
    status, refused = post(chunk_server, {"documents": [{"text": LONG, "tokens_per_chunk": 9}]})
    assert status == 400
    assert "over the limit of 256" in refused["error"]["message"]


def test_each_chunk_gets_its_rows_of_the_documents_attention_maps(
    chunk_client: EmbedderClient,
) -> None:
    (document,) = chunk_client.embed_chunks(
        [DOCUMENT], spans=[SENTENCES[:2]], attention=True, layers=[0, 5], heads=[1, 3]
    )
    served = chunk_client.embed([DOCUMENT], attention=True, layers=[0, 5], heads=[1, 3])
    maps = served.attentions[0]
    tokens = chunk_client.tokenize([DOCUMENT])[0]
    assert maps is not None
    for chunk, span in zip(document.chunks, SENTENCES[:2], strict=True):
        rows = overlapping(tokens, *span)
        assert chunk.attentions is not None
        assert chunk.attentions.shape == (2, 2, len(rows), len(tokens))
        np.testing.assert_allclose(chunk.attentions, maps[:, :, rows, :], atol=1e-6)


def test_the_model_lists_late_chunking_among_its_tasks_and_its_limits(
    chunk_client: EmbedderClient,
) -> None:
    info = chunk_client.info()
    assert list(info.tasks) == ["embed", "explain", "late_chunking"]
    assert info.limits.max_late_chunking_documents == MAX_DOCUMENTS
    assert info.limits.max_chunks_per_document == 64


def test_the_readme_example_runs(chunk_server: ServerThread) -> None:
    page = (ROOT / "docs" / "tasks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    (example,) = [block for block in blocks if "embed_chunks(" in block]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example.replace("localhost:50051", chunk_server.target), {})  # the page is ours
    assert printed.getvalue().strip() == "[(384,), (384,)]"
