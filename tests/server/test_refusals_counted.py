"""A call refused for its token goes through the one call envelope, whatever carried it: counted
in `attnserve_requests_total`, logged with its request id, the same wording over gRPC and HTTP.
And a stream's inline server fault names its request id, in the envelope's one wording."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from grpc import aio

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc as oip_grpc
from attnserve.service.server.auth import REFUSAL
from attnserve.service.server.calls import answer_for
from attnserve.service.server.errors import Code, ServiceError
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc as pb_grpc
from tests.support.scrape import scrape_until, value
from tests.support.servers import MakeServer, ServerThread

TOKEN = "tok-refusals-5e1"


def requests_with(samples: Any, protocol: str, method: str, code: str) -> float:
    return value(samples, "attnserve_requests_total", protocol=protocol, method=method, code=code)


def test_a_refused_grpc_call_is_counted_and_logged_with_its_request_id(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running: ServerThread = make_server(auth_tokens=TOKEN)
    with grpc.insecure_channel(running.target) as channel:
        embed = pb_grpc.EmbedderStub(channel).Embed  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            embed(
                pb.EmbedRequest(texts=["no token"]),
                metadata=(("x-request-id", "refused-1"),),
                timeout=30,
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == REFUSAL
        assert ("x-request-id", "refused-1") in tuple(caught.value.trailing_metadata())
        infer = oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError):
            infer(oip.ModelInferRequest(model_name="x"), metadata=(("authorization", "Bearer no"),))
        # A method no service has: refused the same, counted without its caller-chosen name.
        with pytest.raises(grpc.RpcError) as unknown:
            channel.unary_unary("/made.Up/Method")(b"", timeout=30)
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED

    def counted(samples: Any) -> bool:
        return (
            requests_with(samples, "attnserve.v1", "Embed", "UNAUTHENTICATED") == 1
            and requests_with(samples, "oip", "ModelInfer", "UNAUTHENTICATED") == 1
            and requests_with(samples, "unknown", "unknown", "UNAUTHENTICATED") == 1
        )

    samples = scrape_until(running, counted)
    assert requests_with(samples, "attnserve.v1", "Embed", "UNAUTHENTICATED") == 1
    assert requests_with(samples, "oip", "ModelInfer", "UNAUTHENTICATED") == 1
    assert requests_with(samples, "unknown", "unknown", "UNAUTHENTICATED") == 1
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "refused-1"]
    assert any("code=UNAUTHENTICATED" in r.getMessage() for r in lines), lines


def test_http_and_grpc_refuse_in_the_same_words(make_server: MakeServer) -> None:
    running = make_server(auth_tokens=TOKEN, http_port=0)
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.running.http_port}/v1/embeddings",
        data=json.dumps({"input": "x", "model": "all-MiniLM-L6-v2"}).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["message"] == REFUSAL


def test_a_server_fault_is_answered_in_one_wording_with_the_request_id() -> None:
    answer = answer_for(RuntimeError("secret detail"), "req-42")
    assert answer.code == Code.INTERNAL
    assert answer.message == "internal error (request id req-42)"
    refused = ServiceError(Code.UNAUTHENTICATED, REFUSAL)
    assert answer_for(refused, "req-43") is refused


def test_a_stream_fault_is_answered_in_the_envelopes_words(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server fault inside one request of a stream is answered inline in the envelope's
    wording, naming the request's id (or the call's when it has none), never the fault's words."""
    running = make_server()

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(running.running.assembly.models.default.batcher, "submit", broken)

    async def run() -> list[pb.EmbedResponse]:
        async with aio.insecure_channel(running.target) as channel:
            call = pb_grpc.EmbedderStub(channel).EmbedStream(  # type: ignore[no-untyped-call]
                metadata=(("x-request-id", "stream-call-9"),), timeout=60
            )
            await call.write(pb.EmbedRequest(texts=["named"], request_id="r1"))
            await call.write(pb.EmbedRequest(texts=["unnamed"]))
            await call.done_writing()
            return [response async for response in call]

    answers = {r.request_id: r.error for r in asyncio.run(run())}
    assert answers["r1"].message == "internal error (request id r1)"
    assert answers[""].message == "internal error (request id stream-call-9)"
    assert answers["r1"].code == grpc.StatusCode.INTERNAL.value[0]
