"""attnserve.v1's `Rerank`, `RerankStream` and `Classify`: protobuf <-> the score task, a thin
cell.

On the same `attnserve.v1.Embedder` service as Embed, in the same envelope (`GrpcCall`: request
id, metrics under protocol "attnserve.v1", the log line, failures -> status codes). A request may
name its model (`model`, "" = the default); the model answers only if it offers the score task,
else INVALID_ARGUMENT names what it does offer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.errors import Code, invalid
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.score import ClassifyResult, PairMaps, RerankResult, ScoreTask
from attnserve.service.server.v1.messages import (
    PROTOCOL,
    TRUNCATIONS,
    attention_request,
    enum_value,
    inline_error,
    timings_message,
)
from attnserve.service.server.v1.streams import answer_or_fail, answer_stream, read_requests
from attnserve.v1 import embedder_pb2 as pb


def pair_attention(
    maps: PairMaps | None, result: RerankResult | ClassifyResult
) -> pb.PairAttention | None:
    """A pair's maps as `PairAttention` (None when not asked for: the field stays unset)."""
    if maps is None:
        return None
    return pb.PairAttention(
        attentions=wire.encode(maps.maps, pb.DTYPE_FLOAT32),
        layers=result.layers,
        heads=result.heads,
        segments=[pb.TokenSpan(start=start, end=end) for start, end in maps.segments],
        tokens=maps.tokens,
    )


def stream_failure(request_id: str, code: Code, message: str) -> pb.RerankStreamResponse:
    """A RerankStream request's inline failure: its id, the status number and the message."""
    return pb.RerankStreamResponse(request_id=request_id, error=inline_error(code, message))


class ScoreCell:
    """`Rerank`, `RerankStream` and `Classify` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.max_stream_pending = settings.max_stream_pending

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Rerank": grpc.unary_unary_rpc_method_handler(
                self.Rerank, response_serializer=pb.RerankResponse.SerializeToString
            ),
            "Classify": grpc.unary_unary_rpc_method_handler(
                self.Classify, response_serializer=pb.ClassifyResponse.SerializeToString
            ),
            "RerankStream": grpc.stream_stream_rpc_method_handler(
                self.RerankStream, response_serializer=pb.RerankStreamResponse.SerializeToString
            ),
        }

    async def Rerank(self, data: bytes, context: Context) -> pb.RerankResponse:
        async with GrpcCall(self.front, PROTOCOL, "Rerank", context):
            return await self.rerank(parse(pb.RerankRequest, data), deadline_of(context))

    async def RerankStream(
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.RerankStreamResponse]:
        """Requests run concurrently; each answer (or its failure) is sent as it completes."""
        async with GrpcCall(self.front, PROTOCOL, "RerankStream", context) as call_id:

            async def run(request: pb.RerankRequest) -> pb.RerankStreamResponse:
                response = await self.rerank(request, deadline_of(context))
                return pb.RerankStreamResponse(request_id=request.request_id, response=response)

            async def answer(data: bytes) -> pb.RerankStreamResponse:
                return await answer_or_fail(data, pb.RerankRequest, run, stream_failure, call_id)

            async def read(responses: asyncio.Queue[pb.RerankStreamResponse | None]) -> None:
                await read_requests(request_iterator, answer, responses, self.max_stream_pending)

            async for response in answer_stream(read, self.max_stream_pending):
                yield response

    async def rerank(self, request: pb.RerankRequest, deadline: float | None) -> pb.RerankResponse:
        """One Rerank request, unary or streamed."""
        started = time.perf_counter()
        model = self.models.route(request.model)
        options = ScoreOptions(
            truncation=enum_value(TRUNCATIONS, request.truncation, "truncation"),
            max_tokens=request.max_tokens or None,
            raw_scores=request.raw_scores,
            top_n=request.top_n or None,
            return_documents=request.return_documents,
            attention=attention_request(request.attention),
        )
        documents = list(request.documents)
        task = model.task(ScoreTask, "rerank")
        result = await task.rerank(request.query, documents, options, deadline)
        results = [
            pb.RerankResult(
                index=ranked.index,
                score=ranked.score,
                document=documents[ranked.index] if request.return_documents else "",
                token_count=ranked.token_count,
                truncated=ranked.truncated,
                attention=pair_attention(ranked.attention, result),
            )
            for ranked in result.results
        ]
        return pb.RerankResponse(
            request_id=request.request_id,
            model=model.manifest.model.name,
            results=results,
            total_tokens=result.tokens,
            timings=timings_message(result.timings, started),
        )

    async def Classify(self, data: bytes, context: Context) -> pb.ClassifyResponse:
        async with GrpcCall(self.front, PROTOCOL, "Classify", context):
            started = time.perf_counter()
            request = parse(pb.ClassifyRequest, data)
            model = self.models.route(request.model)
            options = ScoreOptions(
                truncation=enum_value(TRUNCATIONS, request.truncation, "truncation"),
                max_tokens=request.max_tokens or None,
                raw_scores=request.raw_scores,
                top_k=request.top_k or None,
                attention=attention_request(request.attention),
            )
            if request.texts and request.pairs:
                raise invalid("set either texts or pairs, not both")
            inputs: list[str] | list[tuple[str, str]] = list(request.texts) or [
                (pair.text, pair.text_pair) for pair in request.pairs
            ]
            task = model.task(ScoreTask, "classify")
            result = await task.classify(inputs, options, deadline_of(context))
            results = [
                pb.Classification(
                    labels=[pb.LabelScore(label=s.label, score=s.score) for s in item.labels],
                    token_count=item.token_count,
                    truncated=item.truncated,
                    attention=pair_attention(item.attention, result),
                )
                for item in result.inputs
            ]
            return pb.ClassifyResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                results=results,
                total_tokens=result.tokens,
                timings=timings_message(result.timings, started),
            )
