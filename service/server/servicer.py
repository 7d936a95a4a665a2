"""The gRPC transport of `attnserve.v1`: protobuf <-> the tasks' types, request ids, status
codes, per-call metrics.

Only this module knows about `attnserve.v1` messages and `ServicerContext` (the `Info` answer is
rendered here too, by `build_info`). It gets the registry of served models from the composition
root (`app.py`) and asks the model a request names (`model`; none: the default model) for the
task a call speaks; failures become status codes through the one map in `status.py`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import grpc
import onnxruntime

from attnserve.service import wire
from attnserve.service.server.calls import (
    Context,
    Front,
    GrpcCall,
    deadline_of,
    parse,
)
from attnserve.service.server.embed import EmbedResult, EmbedTask
from attnserve.service.server.errors import Code, invalid
from attnserve.service.server.limits import Limits
from attnserve.service.server.models import Registry, ServedModel
from attnserve.service.server.options import (
    AttentionRequest,
    EmbedOptions,
    TokenizeOptions,
    Truncation,
)
from attnserve.service.server.status import status_number
from attnserve.service.server.streams import answer_or_fail, answer_stream, read_requests
from attnserve.service.server.tokenizer import token_views
from attnserve.v1 import embedder_pb2 as pb

T = TypeVar("T")
PROTOCOL = "attnserve.v1"

TRUNCATIONS = {
    pb.TRUNCATE_UNSPECIFIED: Truncation.END,
    pb.TRUNCATE_END: Truncation.END,
    pb.TRUNCATE_START: Truncation.START,
    pb.TRUNCATE_NONE: Truncation.NONE,
}
AGGREGATIONS = {
    pb.HEAD_AGGREGATION_UNSPECIFIED: False,
    pb.HEAD_AGGREGATION_NONE: False,
    pb.HEAD_AGGREGATION_MEAN: True,
}
OUTPUT_DTYPES = {
    pb.DTYPE_UNSPECIFIED: pb.DTYPE_FLOAT32,
    pb.DTYPE_FLOAT32: pb.DTYPE_FLOAT32,
    pb.DTYPE_FLOAT16: pb.DTYPE_FLOAT16,
}


def enum_value(table: Mapping[Any, T], value: int, field: str) -> T:
    if value not in table:
        raise invalid(f"{field}: unknown enum value {value}")
    return table[value]


def attention_request(options: pb.AttentionOptions) -> AttentionRequest | None:
    """The maps an `AttentionOptions` asks for (Embed's, Rerank's and Classify's alike)."""
    if not options.enabled:
        return None
    return AttentionRequest(
        layers=tuple(options.layers),
        heads=tuple(options.heads),
        average_heads=enum_value(AGGREGATIONS, options.aggregation, "attention.aggregation"),
    )


def options_from_proto(options: pb.EmbedOptions) -> tuple[EmbedOptions, int]:
    attention = attention_request(options.attention)
    dtype = enum_value(OUTPUT_DTYPES, options.output_dtype, "output_dtype")
    parsed = EmbedOptions(
        pooled=options.pooled if options.HasField("pooled") else True,
        token_embeddings=options.token_embeddings,
        normalize=options.normalize if options.HasField("normalize") else None,
        truncation=enum_value(TRUNCATIONS, options.truncate, "truncate"),
        attention=attention,
        max_tokens=options.max_tokens or None,
        float_bytes=wire.WIRE_DTYPES[dtype].itemsize,
        dimensions=options.dimensions or None,
        prompt_name=options.prompt_name if options.HasField("prompt_name") else None,
        chunking=options.chunking if options.HasField("chunking") else None,
        chunk_overlap=options.chunk_overlap if options.HasField("chunk_overlap") else None,
    )
    return parsed, dtype


def limits_message(limits: Limits) -> pb.Limits:
    return pb.Limits(
        max_texts_per_request=limits.max_texts_per_request,
        max_chars_per_text=limits.max_chars_per_text,
        max_tokens_per_text=limits.max_tokens_per_text,
        max_attention_elements=limits.max_attention_elements,
        max_receive_message_bytes=limits.max_receive_message_bytes,
        max_send_message_bytes=limits.max_send_message_bytes,
        max_queue_texts=limits.max_queue_texts,
        max_documents_per_request=limits.max_documents_per_request,
        max_document_tokens=limits.max_document_tokens,
        max_late_chunking_documents=limits.max_late_chunking_documents,
        max_chunks_per_document=limits.max_chunks_per_document,
    )


def build_info(served: ServedModel, version: str, models: list[str]) -> pb.InfoResponse:
    """One model's `Info` answer: what it is, its limits and tasks, and every model the server
    serves (`models`, the default first); fixed for the server's life."""
    model, engine = served.manifest.model, served.engine
    return pb.InfoResponse(
        model_name=model.name,
        model_source=model.source,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        pooling=model.pooling,
        normalize=model.normalize,
        default_max_tokens=served.pipeline.default_max_tokens,
        limits=limits_message(served.limits),
        precision=engine.precision,
        execution_provider=engine.provider,
        attention_maps=engine.supports_maps(),
        artifact_sha256=served.manifest.artifact_hash,
        server_version=version,
        onnxruntime_version=onnxruntime.__version__,
        prompts=model.prompts,
        default_prompt_name=model.default_prompt_name or "",
        family=model.family,
        causal=model.causal,
        model=served.name,
        models=models,
        tasks=served.task_names,
        labels=served.manifest.head.labels if served.manifest.head is not None else (),
        chunking=served.limits.chunking,
        chunk_overlap=served.limits.chunk_overlap_tokens,
    )


def build_infos(models: Registry, version: str) -> dict[str, pb.InfoResponse]:
    """Every served model's `Info` answer, by served name."""
    return {model.name: build_info(model, version, models.names) for model in models}


def method_handlers(service: EmbedderService) -> dict[str, grpc.RpcMethodHandler]:
    """`attnserve.v1.Embedder`'s methods, taking raw bytes (see `parse`)."""
    return {
        "Embed": grpc.unary_unary_rpc_method_handler(
            service.Embed, response_serializer=pb.EmbedResponse.SerializeToString
        ),
        "EmbedStream": grpc.stream_stream_rpc_method_handler(
            service.EmbedStream, response_serializer=pb.EmbedResponse.SerializeToString
        ),
        "Tokenize": grpc.unary_unary_rpc_method_handler(
            service.Tokenize, response_serializer=pb.TokenizeResponse.SerializeToString
        ),
        "Info": grpc.unary_unary_rpc_method_handler(
            service.Info, response_serializer=pb.InfoResponse.SerializeToString
        ),
    }


class EmbedderService:
    """`attnserve.v1.Embedder`: the richest way in (per-token vectors, attention maps, timings)."""

    def __init__(
        self,
        models: Registry,
        infos: Mapping[str, pb.InfoResponse],
        front: Front,
        max_stream_pending: int,
    ) -> None:
        self.models = models
        self.max_stream_pending = max_stream_pending
        self.infos = infos  # by served name (build_infos)
        self.front = front
        self.metrics = front.metrics

    def scope(self, method: str, context: Context) -> GrpcCall:
        return GrpcCall(self.front, PROTOCOL, method, context)

    async def Embed(self, data: bytes, context: Context) -> pb.EmbedResponse:
        async with self.scope("Embed", context):
            return await self.embed(parse(pb.EmbedRequest, data), deadline_of(context))

    async def EmbedStream(
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Requests run concurrently; each response (or its error) is sent as it completes
        (`streams.py`)."""
        async with self.scope("EmbedStream", context) as call_id:
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

            return await answer_or_fail(data, pb.EmbedRequest, run, error_response, call_id)

        await read_requests(request_iterator, answer, responses, self.max_stream_pending)

    async def Tokenize(self, data: bytes, context: Context) -> pb.TokenizeResponse:
        async with self.scope("Tokenize", context):
            request = parse(pb.TokenizeRequest, data)
            options = TokenizeOptions(
                truncation=enum_value(TRUNCATIONS, request.truncate, "truncate"),
                max_tokens=request.max_tokens or None,
                prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
            )
            model = self.models.route(request.model)
            counts_only = request.counts_only  # no offsets, no Token messages: counts cheaply
            tokenized = await model.pipeline.tokenize(
                list(request.texts), options, offsets=not counts_only
            )
            texts = []
            for text in tokenized.texts:
                tokens = [] if counts_only else [
                    pb.Token(
                        id=view.id, text=view.text, start=view.start, end=view.end,
                        special=view.special, prompt=view.prompt,
                    )
                    for view in token_views(text)
                ]  # fmt: skip
                texts.append(
                    pb.TokenizedText(
                        tokens=tokens, truncated=text.truncated, token_count=text.length
                    )
                )
            return pb.TokenizeResponse(texts=texts, prompt_name=tokenized.prompt.name)

    async def Info(self, data: bytes, context: Context) -> pb.InfoResponse:
        async with self.scope("Info", context):
            request = parse(pb.InfoRequest, data)
            return self.infos[self.models.route(request.model).name]

    async def embed(self, request: pb.EmbedRequest, deadline: float | None) -> pb.EmbedResponse:
        started = time.perf_counter()
        options, dtype = options_from_proto(request.options)
        model = self.models.route(request.model)
        result = await model.task(EmbedTask).embed(list(request.texts), options, deadline)
        serialize_started = time.perf_counter()
        response = to_proto(request, model.manifest.model.name, result, dtype)
        finished = time.perf_counter()
        self.metrics.serialize_seconds.observe(finished - serialize_started)
        timings = response.timings
        timings.queue_ms = result.timings.queue_s * 1000
        timings.tokenize_ms = result.timings.tokenize_s * 1000
        timings.inference_ms = result.timings.inference_s * 1000
        timings.total_ms = (finished - started) * 1000
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


def error_response(request_id: str, code: Code, message: str) -> pb.EmbedResponse:
    """A stream's inline failure: the request id, the status number and the message."""
    return pb.EmbedResponse(
        request_id=request_id, error=pb.Error(code=status_number(code), message=message)
    )
