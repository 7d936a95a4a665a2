"""Many calls at once on one channel, the normal way to use gRPC: none is refused.

Every multiplexing client (grpc-go, grpc-java, tonic, Python aio) opens one HTTP/2 stream per
call on a shared connection. A server-side stream limit refuses the excess with REFUSED_STREAM
(the client sees UNAVAILABLE) instead of queueing it; attnserve bounds work with its own queue
(`max_queue_texts`), so under default settings a burst of calls on one channel all succeed.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from grpc import aio

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc as oip_grpc
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc as pb_grpc
from tests.support.servers import ServerThread

CALLS = 300  # at once, on one channel (past the old per-connection limit of 100)


def outcomes(results: list[object]) -> Counter[str]:
    """OK or the status code name of each call."""
    seen: Counter[str] = Counter()
    for result in results:
        if isinstance(result, aio.AioRpcError):
            seen[result.code().name] += 1
        elif isinstance(result, BaseException):
            seen[type(result).__name__] += 1
        else:
            seen["OK"] += 1
    return seen


async def burst(target: str, kind: str) -> Counter[str]:
    async with aio.insecure_channel(target) as channel:
        embedder = pb_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
        inference = oip_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

        async def embed(index: int) -> object:
            return await embedder.Embed(
                pb.EmbedRequest(texts=[f"caller {index} asks"]), timeout=120
            )

        async def stream(index: int) -> object:
            call = embedder.EmbedStream(timeout=120)
            for part in range(2):
                await call.write(pb.EmbedRequest(texts=[f"stream {index} part {part}"]))
            await call.done_writing()
            responses = [response async for response in call]
            assert len(responses) == 2
            assert not any(r.HasField("error") for r in responses)
            return responses

        async def infer(index: int) -> object:
            request = oip.ModelInferRequest(model_name="all-MiniLM-L6-v2")
            tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1, 1])
            tensor.contents.bytes_contents.append(f"oip caller {index}".encode())
            return await inference.ModelInfer(request, timeout=120)

        call = {"embed": embed, "stream": stream, "infer": infer}[kind]
        results = await asyncio.gather(*(call(i) for i in range(CALLS)), return_exceptions=True)
        return outcomes(list(results))


@pytest.mark.parametrize("kind", ["embed", "stream", "infer"])
def test_a_burst_of_calls_on_one_channel_all_succeed(server: ServerThread, kind: str) -> None:
    seen = asyncio.run(burst(server.target, kind))
    assert seen == Counter({"OK": CALLS}), seen
