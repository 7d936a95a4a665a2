"""tei.v1's `Embed` service: TEI's Embed and EmbedAll (one text per request) <-> the embed task,
a thin cell.

TEI's meanings: `normalize` defaults to true when unset (proto3 would say false), `truncate`
false refuses an over-long text, `truncation_direction` picks the side kept, `prompt_name` and
`dimensions` (Matryoshka) as the embed task reads them. EmbedAll answers every token's vector,
special tokens included, never normalised, as TEI does. EmbedSparse needs a SPLADE head, which
no attnserve artifact has yet: UNIMPLEMENTED, saying so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.options import EmbedOptions
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedResult, EmbedTask
from attnserve.service.server.tei.messages import (
    PROTOCOL,
    TeiStatusError,
    metadata,
    model_offering,
    truncation,
)
from attnserve.service.server.tei.streams import Streams
from attnserve.tei import tei_pb2 as pb

SPARSE_REFUSAL = (
    "EmbedSparse needs a SPLADE model (sparse vocabulary weights); attnserve serves dense "
    "embedders and cross-encoders only so far: use Embed"
)


class EmbedCell:
    """`Embed`, `EmbedAll` and `EmbedSparse` of `tei.v1.Embed`, each with its stream."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.streams = Streams(front, settings.max_stream_pending)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Embed": grpc.unary_unary_rpc_method_handler(
                self.Embed, response_serializer=pb.EmbedResponse.SerializeToString
            ),
            "EmbedAll": grpc.unary_unary_rpc_method_handler(
                self.EmbedAll, response_serializer=pb.EmbedAllResponse.SerializeToString
            ),
            "EmbedSparse": grpc.unary_unary_rpc_method_handler(
                self.EmbedSparse, response_serializer=pb.EmbedSparseResponse.SerializeToString
            ),
            "EmbedStream": grpc.stream_stream_rpc_method_handler(
                self.EmbedStream, response_serializer=pb.EmbedResponse.SerializeToString
            ),
            "EmbedAllStream": grpc.stream_stream_rpc_method_handler(
                self.EmbedAllStream, response_serializer=pb.EmbedAllResponse.SerializeToString
            ),
            "EmbedSparseStream": grpc.stream_stream_rpc_method_handler(
                self.EmbedSparseStream,
                response_serializer=pb.EmbedSparseResponse.SerializeToString,
            ),
        }

    def embedder(self) -> ServedModel:
        return model_offering(self.models, EmbedTask, "an embedding model")

    async def Embed(self, data: bytes, context: Context) -> pb.EmbedResponse:
        async with GrpcCall(self.front, PROTOCOL, "Embed", context):
            return await self.embed(parse(pb.EmbedRequest, data), deadline_of(context))

    async def embed(self, request: pb.EmbedRequest, deadline: float | None) -> pb.EmbedResponse:
        """One Embed request, unary or streamed: its text's pooled vector."""
        started = time.perf_counter()
        options = EmbedOptions(
            normalize=request.normalize if request.HasField("normalize") else True,
            truncation=truncation(request.truncate, request.truncation_direction),
            dimensions=request.dimensions if request.HasField("dimensions") else None,
            prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
        )
        model = self.embedder()
        result = await model.task(EmbedTask).embed([request.inputs], options, deadline)
        assert result.pooled is not None  # pooled vectors asked for
        return pb.EmbedResponse(
            embeddings=result.pooled[0].tolist(),
            metadata=self.metadata(request.inputs, result, started),
        )

    async def EmbedStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        async def run(request: pb.EmbedRequest) -> pb.EmbedResponse:
            return await self.embed(request, deadline_of(context))

        stream = self.streams.answer("EmbedStream", context, requests, pb.EmbedRequest, run)
        async for response in stream:
            yield response

    async def EmbedAll(self, data: bytes, context: Context) -> pb.EmbedAllResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedAll", context):
            return await self.embed_all(parse(pb.EmbedAllRequest, data), deadline_of(context))

    async def embed_all(
        self, request: pb.EmbedAllRequest, deadline: float | None
    ) -> pb.EmbedAllResponse:
        """One EmbedAll request, unary or streamed: its text's every token vector (one window:
        a text over max_tokens is truncated or refused, never chunked)."""
        started = time.perf_counter()
        options = EmbedOptions(
            pooled=False,
            token_embeddings=True,
            truncation=truncation(request.truncate, request.truncation_direction),
            prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
            chunking=False,
        )
        model = self.embedder()
        result = await model.task(EmbedTask).embed([request.inputs], options, deadline)
        tokens = result.texts[0].token_embeddings
        assert tokens is not None  # per-token vectors asked for
        return pb.EmbedAllResponse(
            token_embeddings=[pb.TokenEmbedding(embeddings=row) for row in tokens.tolist()],
            metadata=self.metadata(request.inputs, result, started),
        )

    async def EmbedAllStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedAllResponse]:
        async def run(request: pb.EmbedAllRequest) -> pb.EmbedAllResponse:
            return await self.embed_all(request, deadline_of(context))

        stream = self.streams.answer("EmbedAllStream", context, requests, pb.EmbedAllRequest, run)
        async for response in stream:
            yield response

    async def EmbedSparse(self, data: bytes, context: Context) -> pb.EmbedSparseResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedSparse", context):
            return await self.embed_sparse(parse(pb.EmbedSparseRequest, data))

    async def EmbedSparseStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedSparseResponse]:
        stream = self.streams.answer(
            "EmbedSparseStream", context, requests, pb.EmbedSparseRequest, self.embed_sparse
        )
        async for response in stream:
            yield response

    async def embed_sparse(self, request: pb.EmbedSparseRequest) -> pb.EmbedSparseResponse:
        raise TeiStatusError(grpc.StatusCode.UNIMPLEMENTED, SPARSE_REFUSAL)

    @staticmethod
    def metadata(text: str, result: EmbedResult, started: float) -> pb.Metadata:
        return metadata(len(text), result.texts[0].token_count, result.timings, started)
