"""attnserve.v1's `EmbedChunks`: protobuf <-> the late_chunking task, a thin cell.

On the same `attnserve.v1.Embedder` service as Embed, in the same envelope (`GrpcCall`: request
id, metrics under protocol "attnserve.v1", the log line, failures -> status codes). A request may
name its model ("" = the default); a model without the task (a cross-encoder) answers
INVALID_ARGUMENT naming what it offers.
"""

from __future__ import annotations

import time

import grpc

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.options import ChunkDocument, LateChunkOptions, Truncation
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.late_chunking import LateChunkResult, LateChunkTask
from attnserve.service.server.v1.messages import (
    OUTPUT_DTYPES,
    PROTOCOL,
    TRUNCATIONS,
    attention_request,
    enum_value,
    timings_message,
)
from attnserve.v1 import embedder_pb2 as pb

# Late chunking refuses an over-long document unless the request asks for a cut.
CHUNK_TRUNCATIONS = {**TRUNCATIONS, pb.TRUNCATE_UNSPECIFIED: Truncation.NONE}


def chunk_options(request: pb.ChunkRequest) -> tuple[LateChunkOptions, int]:
    dtype = enum_value(OUTPUT_DTYPES, request.output_dtype, "output_dtype")
    options = LateChunkOptions(
        truncation=enum_value(CHUNK_TRUNCATIONS, request.truncate, "truncate"),
        max_tokens=request.max_tokens or None,
        normalize=request.normalize if request.HasField("normalize") else None,
        attention=attention_request(request.attention),
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


class LateChunkCell:
    """`EmbedChunks` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "EmbedChunks": grpc.unary_unary_rpc_method_handler(
                self.EmbedChunks, response_serializer=pb.ChunkResponse.SerializeToString
            ),
        }

    async def EmbedChunks(self, data: bytes, context: Context) -> pb.ChunkResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedChunks", context):
            started = time.perf_counter()
            request = parse(pb.ChunkRequest, data)
            options, dtype = chunk_options(request)
            model = self.models.route(request.model)
            result = await model.task(LateChunkTask).chunk(
                chunk_documents(request), options, deadline_of(context)
            )
            return pb.ChunkResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                documents=to_proto(result, dtype),
                timings=timings_message(result.timings, started),
                attention_layers=result.layers,
                attention_heads=result.heads,
                prompt_name=result.prompt_name,
            )
