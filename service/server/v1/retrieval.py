"""attnserve.v1's `EmbedSparse` and `EmbedMultiVector`: protobuf <-> the retrieval tasks, a thin
cell.

On the same `attnserve.v1.Embedder` service as Embed, in the same envelope. A request may name
its model ("" = the default); a model without the task (a dense embedder, a cross-encoder)
answers INVALID_ARGUMENT naming what it offers. (MaxSim rerank is the score cell's `Rerank`.)
"""

from __future__ import annotations

import time

import grpc

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.multi_vector import MultiVectorOptions, MultiVectorTask
from attnserve.service.server.tasks.sparse import SparseEmbedTask, SparseOptions
from attnserve.service.server.v1.messages import (
    OUTPUT_DTYPES,
    PROTOCOL,
    TRUNCATIONS,
    enum_value,
    timings_message,
)
from attnserve.v1 import embedder_pb2 as pb

INPUT_TYPES = {
    pb.INPUT_TYPE_UNSPECIFIED: False,
    pb.INPUT_TYPE_DOCUMENT: False,
    pb.INPUT_TYPE_QUERY: True,
}


class RetrievalCell:
    """`EmbedSparse` and `EmbedMultiVector` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "EmbedSparse": grpc.unary_unary_rpc_method_handler(
                self.EmbedSparse, response_serializer=pb.SparseResponse.SerializeToString
            ),
            "EmbedMultiVector": grpc.unary_unary_rpc_method_handler(
                self.EmbedMultiVector,
                response_serializer=pb.MultiVectorResponse.SerializeToString,
            ),
        }

    async def EmbedSparse(self, data: bytes, context: Context) -> pb.SparseResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedSparse", context):
            started = time.perf_counter()
            request = parse(pb.SparseRequest, data)
            model = self.models.route(request.model)
            options = SparseOptions(
                truncation=enum_value(TRUNCATIONS, request.truncation, "truncation"),
                max_tokens=request.max_tokens or None,
                top_k=request.top_k or None,
                min_weight=request.min_weight,
            )
            task = model.task(SparseEmbedTask)
            result = await task.embed_sparse(
                list(request.texts), options, deadline_of(context), request.return_tokens
            )
            vocabulary = model.tokenizer.tokenizer
            vectors = [
                pb.SparseVector(
                    indices=text.vector.indices.tolist(),
                    values=text.vector.values.tolist(),
                    tokens=[vocabulary.id_to_token(int(i)) or "" for i in text.vector.indices]
                    if request.return_tokens
                    else [],
                    token_count=text.token_count,
                    truncated=text.truncated,
                )
                for text in result.texts
            ]
            return pb.SparseResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                vectors=vectors,
                vocab_size=model.manifest.model.vocab_size,
                total_tokens=result.tokens,
                timings=timings_message(result.timings, started),
            )

    async def EmbedMultiVector(self, data: bytes, context: Context) -> pb.MultiVectorResponse:
        async with GrpcCall(self.front, PROTOCOL, "EmbedMultiVector", context):
            started = time.perf_counter()
            request = parse(pb.MultiVectorRequest, data)
            model = self.models.route(request.model)
            dtype = enum_value(OUTPUT_DTYPES, request.dtype, "dtype")
            options = MultiVectorOptions(
                is_query=enum_value(INPUT_TYPES, request.input_type, "input_type"),
                truncation=enum_value(TRUNCATIONS, request.truncation, "truncation"),
                max_tokens=request.max_tokens or None,
                float_bytes=2 if dtype == pb.DTYPE_FLOAT16 else 4,
            )
            task = model.task(MultiVectorTask)
            result = await task.embed_multi_vector(
                list(request.texts), options, deadline_of(context)
            )
            results = [
                pb.TokenVectors(
                    vectors=wire.encode(text.vectors, dtype),
                    token_ids=text.token_ids.tolist(),
                    spans=[pb.CharSpan(start=a, end=b) for a, b in text.spans],
                    token_count=text.token_count,
                    truncated=text.truncated,
                )
                for text in result.texts
            ]
            return pb.MultiVectorResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                results=results,
                total_tokens=result.tokens,
                timings=timings_message(result.timings, started),
            )
