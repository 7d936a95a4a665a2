"""attnserve.v1's `EmbedChunks`: protobuf <-> the late_chunking task, a thin adapter.

Beside `servicer.py` (Embed, Tokenize, Info) on the same `attnserve.v1.Embedder` service, in the
same call envelope (`GrpcCall`: request id, metrics under protocol "attnserve.v1", the log line,
failures -> status codes). A request may name its model ("" = the default); a model without the
task (a cross-encoder) answers INVALID_ARGUMENT naming the tasks it offers.
"""

from __future__ import annotations

import time

import grpc

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.late_chunking import LateChunkResult, LateChunkTask
from attnserve.service.server.models import Registry
from attnserve.service.server.options import (
    AttentionRequest,
    ChunkDocument,
    LateChunkOptions,
    Truncation,
)
from attnserve.service.server.servicer import (
    AGGREGATIONS,
    OUTPUT_DTYPES,
    PROTOCOL,
    TRUNCATIONS,
    enum_value,
)
from attnserve.v1 import embedder_pb2 as pb

# Late chunking refuses an over-long document unless the request asks for a cut.
CHUNK_TRUNCATIONS = {**TRUNCATIONS, pb.TRUNCATE_UNSPECIFIED: Truncation.NONE}


def late_chunking_handlers(service: LateChunkService) -> dict[str, grpc.RpcMethodHandler]:
    """The late_chunking task's method of `attnserve.v1.Embedder`, taking raw bytes."""
    return {
        "EmbedChunks": grpc.unary_unary_rpc_method_handler(
            service.EmbedChunks, response_serializer=pb.ChunkResponse.SerializeToString
        ),
    }


def chunk_options(request: pb.ChunkRequest) -> tuple[LateChunkOptions, int]:
    attention = None
    if request.attention.enabled:
        attention = AttentionRequest(
            layers=tuple(request.attention.layers),
            heads=tuple(request.attention.heads),
            average_heads=enum_value(
                AGGREGATIONS, request.attention.aggregation, "attention.aggregation"
            ),
        )
    dtype = enum_value(OUTPUT_DTYPES, request.output_dtype, "output_dtype")
    options = LateChunkOptions(
        truncation=enum_value(CHUNK_TRUNCATIONS, request.truncate, "truncate"),
        max_tokens=request.max_tokens or None,
        normalize=request.normalize if request.HasField("normalize") else None,
        attention=attention,
        float_bytes=wire.WIRE_DTYPES[dtype].itemsize,
        prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
    )
    return options, dtype


def chunk_documents(request: pb.ChunkRequest) -> list[ChunkDocument]:
    return [
        ChunkDocument(
            document.text,
            tuple((span.start, span.end) for span in document.spans),
            document.tokens_per_chunk,
        )
        for document in request.documents
    ]


def to_proto(result: LateChunkResult, dtype: int) -> list[pb.DocumentChunks]:
    documents = []
    for document in result.documents:
        entry = pb.DocumentChunks(
            vectors=wire.encode(document.vectors, dtype),
            token_count=document.token_count,
            truncated=document.truncated,
            prompt_tokens=document.prompt_tokens,
        )
        for chunk, maps in zip(document.chunks, document.attentions, strict=True):
            added = entry.chunks.add(
                start=chunk.start,
                end=chunk.end,
                token_count=chunk.rows.size,
                outside=chunk.outside,
                truncated=chunk.cut,
            )
            if maps is not None:
                added.attentions.CopyFrom(wire.encode(maps, dtype))
        documents.append(entry)
    return documents


class LateChunkService:
    def __init__(self, models: Registry, front: Front) -> None:
        self.models = models
        self.front = front

    async def EmbedChunks(self, data: bytes, context: Context) -> pb.ChunkResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedChunks", context):
            started = time.perf_counter()
            request = parse(pb.ChunkRequest, data)
            options, dtype = chunk_options(request)
            model = self.models.route(request.model)
            result = await model.task(LateChunkTask).chunk(
                chunk_documents(request), options, deadline_of(context)
            )
            timings = result.timings
            return pb.ChunkResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                documents=to_proto(result, dtype),
                timings=pb.Timings(
                    queue_ms=timings.queue_s * 1000,
                    tokenize_ms=timings.tokenize_s * 1000,
                    inference_ms=timings.inference_s * 1000,
                    total_ms=(time.perf_counter() - started) * 1000,
                ),
                attention_layers=result.layers,
                attention_heads=result.heads,
                prompt_name=result.prompt_name,
            )
