"""A request past the per-request limit is told so (INVALID_ARGUMENT, "at most N texts"), not
that the queue is full: retrying could never help it, so the limit is checked before the
queue's room, whatever protocol carried the request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from attnserve.oip import inference_pb2 as oip
from attnserve.v1 import embedder_pb2 as pb
from tests.support.servers import MakeServer

TOO_MANY = 10_000


def test_ten_thousand_texts_get_the_per_request_limit(make_server: MakeServer) -> None:
    running = make_server(http_port=0)
    limit = running.settings.max_texts_per_request
    with grpc.insecure_channel(
        running.target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        embed = channel.unary_unary("/attnserve.v1.Embedder/Embed")
        request = pb.EmbedRequest(texts=[f"text {i}" for i in range(TOO_MANY)])
        with pytest.raises(grpc.RpcError) as caught:
            embed(request.SerializeToString(), timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {limit} texts" in (caught.value.details() or "")

        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        inferred = oip.ModelInferRequest(model_name="all-MiniLM-L6-v2")
        tensor = inferred.inputs.add(name="text", datatype="BYTES", shape=[TOO_MANY, 1])
        tensor.contents.bytes_contents.extend(b"t" for _ in range(TOO_MANY))
        with pytest.raises(grpc.RpcError) as caught:
            infer(inferred.SerializeToString(), timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    body = json.dumps({"input": ["t"] * TOO_MANY, "model": "all-MiniLM-L6-v2"}).encode()
    posted = urllib.request.Request(
        f"http://127.0.0.1:{running.running.http_port}/v1/embeddings",
        data=body,
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(posted, timeout=60)
    assert refused.value.code == 400
    assert f"at most {limit} texts" in json.loads(refused.value.read())["error"]["message"]
