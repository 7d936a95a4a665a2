"""attnserve.v1's `Embed` and `EmbedStream`: protobuf <-> the embed task, a thin cell.

The richest way in: pooled and per-token vectors, attention maps, float16, timings. A request
may name its model (`model`, "" = the default); the call runs inside the gRPC envelope
(`GrpcCall`: request id, metrics under protocol "attnserve.v1", the log line, failures -> status
codes through `status.py`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable

import grpc

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.errors import Code
from attnserve.service.server.options import EmbedOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedResult, EmbedTask
from attnserve.service.server.v1.messages import (
    OUTPUT_DTYPES,
    PROTOCOL,
    TRUNCATIONS,
    attention_request,
    enum_value,
    inline_error,
    timings_message,
)
from attnserve.service.server.v1.streams import answer_or_fail, answer_stream, read_requests
from attnserve.v1 import embedder_pb2 as pb


def options_from_proto(options: pb.EmbedOptions) -> tuple[EmbedOptions, int]:
    """The request's options in the task's terms, and the wire dtype of its floats."""
    dtype = enum_value(OUTPUT_DTYPES, options.output_dtype, "output_dtype")
    parsed = EmbedOptions(
        pooled=options.pooled if options.HasField("pooled") else True,
        token_embeddings=options.token_embeddings,
        normalize=options.normalize if options.HasField("normalize") else None,
        truncation=enum_value(TRUNCATIONS, options.truncate, "truncate"),
        attention=attention_request(options.attention),
        max_tokens=options.max_tokens or None,
        float_bytes=wire.WIRE_DTYPES[dtype].itemsize,
        dimensions=options.dimensions or None,
        prompt_name=options.prompt_name if options.HasField("prompt_name") else None,
        chunking=options.chunking if options.HasField("chunking") else None,
        chunk_overlap=options.chunk_overlap if options.HasField("chunk_overlap") else None,
    )
    return parsed, dtype


class EmbedCell:
    """`Embed` and `EmbedStream` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.metrics = front.metrics
        self.max_stream_pending = settings.max_stream_pending

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Embed": grpc.unary_unary_rpc_method_handler(
                self.Embed, response_serializer=pb.EmbedResponse.SerializeToString
            ),
            "EmbedStream": grpc.stream_stream_rpc_method_handler(
                self.EmbedStream, response_serializer=pb.EmbedResponse.SerializeToString
            ),
        }

    async def Embed(self, data: bytes, context: Context) -> pb.EmbedResponse:
        async with GrpcCall(self.front, PROTOCOL, "Embed", context):
            return await self.embed(parse(pb.EmbedRequest, data), deadline_of(context))

    async def EmbedStream(
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Requests run concurrently; each response (or its error) is sent as it completes
        (`streams.py`)."""
        async with GrpcCall(self.front, PROTOCOL, "EmbedStream", context) as call_id:
            read = functools.partial(self.read_stream, request_iterator, context, call_id=call_id)
            async for response in answer_stream(read, self.max_stream_pending):
                yield response

    async def read_stream(
        self,
        request_iterator: AsyncIterator[bytes],
        context: Context,
        responses: asyncio.Queue[pb.EmbedResponse | None],
        call_id: str = "",
    ) -> None:
        async def answer(data: bytes) -> pb.EmbedResponse:
            def run(request: pb.EmbedRequest) -> Awaitable[pb.EmbedResponse]:
                return self.embed(request, deadline_of(context))

            return await answer_or_fail(data, pb.EmbedRequest, run, stream_failure, call_id)

        await read_requests(request_iterator, answer, responses, self.max_stream_pending)

    async def embed(self, request: pb.EmbedRequest, deadline: float | None) -> pb.EmbedResponse:
        """One Embed request, unary or streamed."""
        started = time.perf_counter()
        options, dtype = options_from_proto(request.options)
        model = self.models.route(request.model)
        result = await model.task(EmbedTask).embed(list(request.texts), options, deadline)
        serialize_started = time.perf_counter()
        response = to_proto(request, model.manifest.model.name, result, dtype)
        self.metrics.serialize_seconds.observe(time.perf_counter() - serialize_started)
        response.timings.CopyFrom(timings_message(result.timings, started))
        return response


def to_proto(
    request: pb.EmbedRequest, model: str, result: EmbedResult, dtype: int
) -> pb.EmbedResponse:
    response = pb.EmbedResponse(
        request_id=request.request_id,
        model=model,
        attention_layers=result.layers,
        attention_heads=result.heads,
        prompt_name=result.prompt_name,
    )
    if result.pooled is not None:
        response.pooled.CopyFrom(wire.encode(result.pooled, dtype))
    for text in result.texts:
        entry = response.results.add(
            token_count=text.token_count,
            truncated=text.truncated,
            prompt_tokens=text.prompt_tokens,
            windows=text.windows,
            window_tokens=text.window_tokens,
        )
        if text.token_embeddings is not None:
            entry.token_embeddings.CopyFrom(wire.encode(text.token_embeddings, dtype))
        if text.attentions is not None:
            entry.attentions.CopyFrom(wire.encode(text.attentions, dtype))
    return response


def stream_failure(request_id: str, code: Code, message: str) -> pb.EmbedResponse:
    """An EmbedStream request's inline failure: its id, the status number and the message."""
    return pb.EmbedResponse(request_id=request_id, error=inline_error(code, message))
