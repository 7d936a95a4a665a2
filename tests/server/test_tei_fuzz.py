"""tei.v1 under the wire fuzzing attnserve.v1 gets (test_fuzz_wire.py): generated messages and
garbage bytes to every method of TEI's five services, unary and streaming.

Whatever arrives, the answer is a status a client can act on (never UNKNOWN or INTERNAL), with
no Python class names or tracebacks, streams end, and the server still answers ordinary calls
afterwards. The server serves the embedder only, so Predict and Rerank answer
FAILED_PRECONDITION (no model of that type), as TEI does; EmbedSparse is UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnserve.tei import tei_pb2 as tei
from attnserve.tei import tei_pb2_grpc
from tests.support.fuzz import garbage, int32, texts, uint32, unknown_fields
from tests.support.servers import ServerThread

ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,  # TEI's status for a model of the wrong type
    grpc.StatusCode.UNIMPLEMENTED,  # EmbedSparse, saying so
}
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
optional_uint32 = st.one_of(st.none(), uint32)


@st.composite
def embed_requests(draw: st.DrawFn) -> bytes:
    request = tei.EmbedRequest(
        inputs=draw(texts),
        truncate=draw(st.booleans()),
        truncation_direction=draw(int32),  # type: ignore[arg-type]
    )
    if draw(st.booleans()):
        request.normalize = draw(st.booleans())
    if (dimensions := draw(optional_uint32)) is not None:
        request.dimensions = dimensions
    if draw(st.booleans()):
        request.prompt_name = draw(texts)
    return request.SerializeToString() + draw(unknown_fields())


@st.composite
def pair_requests(draw: st.DrawFn) -> bytes:
    request = tei.PredictPairRequest(
        inputs=draw(st.lists(texts, max_size=4)),
        truncate=draw(st.booleans()),
        raw_scores=draw(st.booleans()),
    )
    return request.SerializeToString() + draw(unknown_fields())


@st.composite
def tokenize_requests(draw: st.DrawFn) -> bytes:
    request = tei.EncodeRequest(inputs=draw(texts), add_special_tokens=draw(st.booleans()))
    if draw(st.booleans()):
        request.prompt_name = draw(texts)
    return request.SerializeToString() + draw(unknown_fields())


@st.composite
def decode_requests(draw: st.DrawFn) -> bytes:
    ids = draw(st.lists(st.one_of(st.integers(0, 40_000), uint32), max_size=16))
    request = tei.DecodeRequest(ids=ids, skip_special_tokens=draw(st.booleans()))
    return request.SerializeToString() + draw(unknown_fields())


@st.composite
def rerank_requests(draw: st.DrawFn) -> bytes:
    request = tei.RerankRequest(
        query=draw(texts), texts=draw(st.lists(texts, max_size=4)), return_text=True
    )
    return request.SerializeToString() + draw(unknown_fields())


PAYLOADS = {
    "Embed/Embed": st.one_of(embed_requests(), garbage),
    "Embed/EmbedAll": st.one_of(embed_requests(), garbage),  # EmbedAll's fields are a subset
    "Embed/EmbedSparse": st.one_of(embed_requests(), garbage),
    "Predict/PredictPair": st.one_of(pair_requests(), garbage),
    "Rerank/Rerank": st.one_of(rerank_requests(), garbage),
    "Tokenize/Tokenize": st.one_of(tokenize_requests(), garbage),
    "Tokenize/Decode": st.one_of(decode_requests(), garbage),
    "Info/Info": st.one_of(unknown_fields(), garbage),
}
STREAMS = {
    "Embed/EmbedStream": PAYLOADS["Embed/Embed"],
    "Tokenize/TokenizeStream": PAYLOADS["Tokenize/Tokenize"],
    "Tokenize/DecodeStream": PAYLOADS["Tokenize/Decode"],
}


def check(code: grpc.StatusCode, details: str) -> None:
    assert code in ACCEPTABLE, (code, details)
    assert "<class" not in details
    assert "Traceback" not in details


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as opened:
        yield opened


def still_embeds(channel: grpc.Channel) -> None:
    stub = tei_pb2_grpc.EmbedStub(channel)  # type: ignore[no-untyped-call]
    assert len(stub.Embed(tei.EmbedRequest(inputs="after the fuzz"), timeout=60).embeddings) > 0


@pytest.mark.parametrize("method", sorted(PAYLOADS))
def test_every_unary_method_answers_every_payload_sensibly(
    channel: grpc.Channel, method: str
) -> None:
    call = channel.unary_unary(f"/tei.v1.{method}")

    @FUZZ
    @given(PAYLOADS[method])
    def one(payload: bytes) -> None:
        try:
            call(payload, timeout=60)
        except grpc.RpcError as error:
            check(error.code(), error.details() or "")

    one()
    still_embeds(channel)


@pytest.mark.parametrize("method", sorted(STREAMS))
def test_every_stream_answers_every_payload_and_ends(channel: grpc.Channel, method: str) -> None:
    stream = channel.stream_stream(f"/tei.v1.{method}")

    @settings(FUZZ, max_examples=15)
    @given(st.lists(STREAMS[method], min_size=1, max_size=8))
    def one(payloads: list[bytes]) -> None:
        replies = stream(iter(payloads), timeout=60)
        try:
            assert len(list(replies)) == len(payloads)  # every one answered, the stream ended
        except grpc.RpcError as error:  # a failure ends it, as TEI's streams end
            check(error.code(), error.details() or "")

    one()
    still_embeds(channel)


def test_the_rerank_stream_answers_every_payload(channel: grpc.Channel) -> None:
    stream = channel.stream_unary("/tei.v1.Rerank/RerankStream")

    @settings(FUZZ, max_examples=15)
    @given(st.lists(garbage, max_size=4))
    def one(payloads: list[bytes]) -> None:
        try:
            stream(iter(payloads), timeout=60)
        except grpc.RpcError as error:
            check(error.code(), error.details() or "")

    one()
    still_embeds(channel)
