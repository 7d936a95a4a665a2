"""Bad calls from the outside: each gets the right status, is counted as the client saw it, and
leaves no traceback and no harm behind. Raw bytes go through a generic gRPC channel, as a buggy
or hostile client in any language would send them."""

from __future__ import annotations

import logging
import time

import grpc
import pytest

from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from tests.support.servers import MakeServer, ServerThread, metric, wait_until

UNDECODABLE = {
    "truncated-field": bytes.fromhex("0a10616263"),  # a 16-byte string field, 3 bytes sent
    "all-ones": b"\xff" * 12,
    "bad-utf8": bytes.fromhex("0a02c328"),
}
UNARY_METHODS = ("Embed", "Tokenize", "Info")


def raw_call(
    target: str, method: str, data: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method)
        try:
            call(data, timeout=30, metadata=metadata)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def counted(server: ServerThread, method: str, code: str) -> float:
    registry = server.running.assembly.metrics.registry
    labels = {"protocol": "attnserve.v1", "method": method, "code": code}
    return metric(registry, "attnserve_requests_total", **labels)


def still_serving(server: ServerThread) -> None:
    with EmbedderClient(server.target, attempts=1) as client:
        assert client.embed(["still here"]).pooled is not None


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        (method, payload)
        for method in UNARY_METHODS
        for payload in sorted(UNDECODABLE)
        # InfoRequest has no field 1: those bytes are an unknown field of a valid message.
        if (method, payload) != ("Info", "bad-utf8")
    ],
)
def test_an_undecodable_request_is_an_invalid_argument_in_plain_words(
    server: ServerThread, method: str, payload: str
) -> None:
    before = counted(server, method, "INVALID_ARGUMENT")
    path = f"/attnserve.v1.Embedder/{method}"
    code, details = raw_call(server.target, path, UNDECODABLE[payload])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("the request is not a valid attnserve.v1.")
    assert "<class" not in details
    assert "Traceback" not in details
    assert wait_until(lambda: counted(server, method, "INVALID_ARGUMENT") == before + 1)
    still_serving(server)


def test_an_undecodable_message_in_a_stream_gets_an_inline_error_and_the_stream_goes_on(
    server: ServerThread,
) -> None:
    good = pb.EmbedRequest(texts=["fine"], request_id="ok").SerializeToString()
    with grpc.insecure_channel(server.target) as channel:
        stream = channel.stream_stream("/attnserve.v1.Embedder/EmbedStream")
        replies = [
            pb.EmbedResponse.FromString(raw)
            for raw in stream(iter([UNDECODABLE["bad-utf8"], good]), timeout=30)
        ]
    by_id = {reply.request_id: reply for reply in replies}
    assert by_id[""].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a valid attnserve.v1.EmbedRequest" in by_id[""].error.message
    assert by_id["ok"].pooled.data


def test_auth_refuses_unknown_methods_without_a_crash(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = make_server(auth_tokens="good-token")
    caplog.set_level(logging.DEBUG)
    for method in ("/attnserve.v1.Embedder/Nope", "/nosuch.Service/Call"):
        code, details = raw_call(running.target, method, b"")
        assert code == grpc.StatusCode.UNAUTHENTICATED, details  # nothing learnt without a token
        authorised = (("authorization", "Bearer good-token"),)
        code, _ = raw_call(running.target, method, b"", authorised)
        assert code == grpc.StatusCode.UNIMPLEMENTED
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_deadline_that_passes_in_the_queue_is_counted_as_deadline_exceeded(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = make_server()
    caplog.set_level(logging.DEBUG, logger="attnserve")
    with EmbedderClient(running.target, attempts=1) as client:
        busy = client.stub.Embed.future(
            pb.EmbedRequest(texts=["keeps the model busy for a while " * 12] * 200), timeout=120
        )
        time.sleep(0.1)
        for timeout in (0.3, 0.05):  # expires while queued; while being tokenised or run
            with pytest.raises(grpc.RpcError) as caught:
                client.embed(["behind a long batch " * 20] * 4, timeout_s=timeout)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        busy.result()
    assert wait_until(lambda: counted(running, "Embed", "DEADLINE_EXCEEDED") == 2)
    assert counted(running, "Embed", "CANCELLED") == 0
    errors = metric(
        running.running.assembly.metrics.registry,
        "attnserve_errors_total",
        protocol="attnserve.v1",
        code="DEADLINE_EXCEEDED",
    )
    assert errors == 2
    logged = [r.getMessage() for r in caplog.records if "method=Embed code=" in r.getMessage()]
    assert sum("code=DEADLINE_EXCEEDED" in line for line in logged) == 2


def test_an_oversized_response_is_refused_before_inference(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = make_server(max_send_message_bytes=1 << 20)
    registry = running.running.assembly.metrics.registry
    caplog.set_level(logging.DEBUG)
    inferred = metric(registry, "attnserve_batch_size_texts_sum")
    with EmbedderClient(running.target, attempts=1) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.embed(["word " * 100] * 8, token_embeddings=True)  # ~1.27 MB of floats
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_send_message_bytes" in (caught.value.details() or "")
        # The same request in float16 fits: the estimate follows the output type.
        assert (
            client.embed(["word " * 100] * 8, token_embeddings=True, dtype="float16").pooled
            is not None
        )
    assert wait_until(lambda: counted(running, "Embed", "OK") == 1)
    assert counted(running, "Embed", "RESOURCE_EXHAUSTED") == 1
    assert (metric(registry, "attnserve_batch_size_texts_sum")) == inferred + 8
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_full_queue_refuses_before_any_tokenising(make_server: MakeServer) -> None:
    running = make_server(max_queue_texts=64, max_texts_per_request=64, max_batch_texts=1)
    registry = running.running.assembly.metrics.registry

    def tokenised() -> float:
        return metric(registry, "attnserve_tokenize_duration_seconds_count")

    with EmbedderClient(running.target, attempts=1) as client:
        busy = client.stub.Embed.future(  # 64 long texts, one per batch: seconds of work
            pb.EmbedRequest(texts=["fills the queue for a while " * 40] * 64), timeout=120
        )
        deadline = time.monotonic() + 30
        while (
            running.running.assembly.models.default.batcher.depth < 60
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        before = tokenised()
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as caught:
                client.embed(["refused before any work " * 50] * 8, timeout_s=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not busy.done()  # the queue stayed full all along ...
        assert tokenised() == before  # ... and not one refused text was tokenised
        assert len(busy.result().results) == 64
    assert wait_until(lambda: counted(running, "Embed", "RESOURCE_EXHAUSTED") == 5)
