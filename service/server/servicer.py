"""The gRPC transport: protobuf <-> core types, request ids, status codes, per-call metrics.

Only this module knows about protobuf messages and `ServicerContext`; failures are mapped to
status codes here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeAlias, TypeVar

import grpc
import numpy as np
import onnxruntime
from grpc import aio

from attnserve.service import wire
from attnserve.service.artifact import Manifest
from attnserve.service.server.batcher import Batcher
from attnserve.service.server.engine import Engine
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.logs import request_id_var
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.pipeline import (
    AttentionRequest,
    EmbeddingCore,
    EmbedOptions,
    EmbedResult,
)
from attnserve.service.server.settings import Settings
from attnserve.service.server.tokenizer import TextTokenizer, Truncation
from attnserve.service.server.tracing import Tracer
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc

log = logging.getLogger(__name__)
# grpc ships no type stubs: the servicer context is untyped to mypy.
Context: TypeAlias = Any
T = TypeVar("T")

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


def attnserve_version() -> str:
    try:
        return version("attnserve")
    except PackageNotFoundError:
        return "unknown"


def enum_value(table: Mapping[Any, T], value: int, field: str) -> T:
    if value not in table:
        raise invalid(f"{field}: unknown enum value {value}")
    return table[value]


def options_from_proto(options: pb.EmbedOptions) -> tuple[EmbedOptions, int]:
    attention = None
    if options.attention.enabled:
        attention = AttentionRequest(
            layers=tuple(options.attention.layers),
            heads=tuple(options.attention.heads),
            average_heads=enum_value(
                AGGREGATIONS, options.attention.aggregation, "attention.aggregation"
            ),
        )
    parsed = EmbedOptions(
        pooled=options.pooled if options.HasField("pooled") else True,
        token_embeddings=options.token_embeddings,
        normalize=options.normalize if options.HasField("normalize") else None,
        truncation=enum_value(TRUNCATIONS, options.truncate, "truncate"),
        attention=attention,
        max_tokens=options.max_tokens or None,
    )
    dtype = enum_value(OUTPUT_DTYPES, options.output_dtype, "output_dtype")
    return parsed, dtype


def deadline_of(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class EmbedderService(embedder_pb2_grpc.EmbedderServicer):
    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        engine: Engine,
        tokenizer: TextTokenizer,
        batcher: Batcher,
        metrics: Metrics,
        tracer: Tracer,
    ) -> None:
        self.core = EmbeddingCore(settings, manifest, tokenizer, batcher, metrics, tracer)
        self.tracer = tracer
        self.manifest = manifest
        self.metrics = metrics
        self.accepting = True
        self.info = self.build_info(settings, manifest, engine, tokenizer)

    # --- the shared envelope of every call ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def call_scope(self, method: str, context: Context) -> AsyncIterator[None]:
        """Request id, draining, metrics and the one place failures become status codes."""
        started = time.perf_counter()
        request_id = self.request_id(context)
        code = grpc.StatusCode.OK
        self.metrics.in_flight.inc()
        try:
            if not self.accepting:
                raise ServiceError(Code.UNAVAILABLE, "server is shutting down; retry elsewhere")
            with self.tracer.request(method, request_id):
                yield
        except ServiceError as error:
            code = error.code.status
            log.warning("rpc method=%s code=%s error=%r", method, code.name, error.message)
            await context.abort(code, error.message)
        except (asyncio.CancelledError, aio.AbortError):
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed with an internal error", method)
            await context.abort(code, f"internal error (request id {request_id})")
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            self.metrics.observe_call(method, code.name, elapsed)
            log.debug("rpc method=%s code=%s duration_ms=%.2f", method, code.name, elapsed * 1000)

    @staticmethod
    def request_id(context: Context) -> str:
        given = dict(context.invocation_metadata() or ()).get("x-request-id")
        request_id = str(given)[:128] if given else uuid.uuid4().hex
        request_id_var.set(request_id)
        return request_id

    # --- RPCs ---------------------------------------------------------------------------------

    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        async with self.call_scope("Embed", context):
            await context.send_initial_metadata((("x-request-id", request_id_var.get()),))
            return await self.embed(request, deadline_of(context))
        raise AssertionError("unreachable: call_scope aborts on failure")

    async def EmbedStream(
        self, request_iterator: AsyncIterator[pb.EmbedRequest], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Requests run concurrently; each response (or its error) is sent as it completes."""
        async with self.call_scope("EmbedStream", context):
            await context.send_initial_metadata((("x-request-id", request_id_var.get()),))
            responses: asyncio.Queue[pb.EmbedResponse | None] = asyncio.Queue()
            reader = asyncio.create_task(self.read_stream(request_iterator, context, responses))
            try:
                while (response := await responses.get()) is not None:
                    yield response
                await reader  # surfaces a broken request stream
            finally:
                reader.cancel()

    async def read_stream(
        self,
        request_iterator: AsyncIterator[pb.EmbedRequest],
        context: Context,
        responses: asyncio.Queue[pb.EmbedResponse | None],
    ) -> None:
        async def one(request: pb.EmbedRequest) -> None:
            try:
                response = await self.embed(request, deadline_of(context))
            except ServiceError as error:
                response = self.error_response(request, error.code.status, error.message)
            except Exception:
                log.exception("EmbedStream request %r failed", request.request_id)
                response = self.error_response(request, grpc.StatusCode.INTERNAL, "internal error")
            await responses.put(response)

        pending: set[asyncio.Task[None]] = set()
        try:
            async for request in request_iterator:
                pending.add(asyncio.create_task(one(request)))
            await asyncio.gather(*pending)
        finally:
            for task in pending:
                task.cancel()
            await responses.put(None)

    @staticmethod
    def error_response(
        request: pb.EmbedRequest, code: grpc.StatusCode, message: str
    ) -> pb.EmbedResponse:
        status_number: int = code.value[0]
        return pb.EmbedResponse(
            request_id=request.request_id, error=pb.Error(code=status_number, message=message)
        )

    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        async with self.call_scope("Tokenize", context):
            truncation = enum_value(TRUNCATIONS, request.truncate, "truncate")
            encoded = await self.core.tokenize_off_loop(
                list(request.texts), truncation, request.max_tokens or None
            )
            texts = []
            for text in encoded:
                enc = text.encoding
                tokens = [
                    pb.Token(
                        id=enc.ids[i],
                        text=enc.tokens[i],
                        start=enc.offsets[i][0],
                        end=enc.offsets[i][1],
                        special=bool(enc.special_tokens_mask[i]),
                    )
                    for i in text.kept.tolist()
                ]
                texts.append(pb.TokenizedText(tokens=tokens, truncated=text.truncated))
            return pb.TokenizeResponse(texts=texts)
        raise AssertionError("unreachable: call_scope aborts on failure")

    async def Info(self, request: pb.InfoRequest, context: Context) -> pb.InfoResponse:
        async with self.call_scope("Info", context):
            return self.info
        raise AssertionError("unreachable: call_scope aborts on failure")

    # --- conversions --------------------------------------------------------------------------

    async def embed(self, request: pb.EmbedRequest, deadline: float | None) -> pb.EmbedResponse:
        started = time.perf_counter()
        options, dtype = options_from_proto(request.options)
        result = await self.core.embed(list(request.texts), options, deadline)
        serialize_started = time.perf_counter()
        response = self.to_proto(request, result, options, dtype)
        finished = time.perf_counter()
        self.metrics.serialize_seconds.observe(finished - serialize_started)
        timings = response.timings
        timings.queue_ms = result.timings.queue_s * 1000
        timings.tokenize_ms = result.timings.tokenize_s * 1000
        timings.inference_ms = result.timings.inference_s * 1000
        timings.total_ms = (finished - started) * 1000
        return response

    def to_proto(
        self, request: pb.EmbedRequest, result: EmbedResult, options: EmbedOptions, dtype: int
    ) -> pb.EmbedResponse:
        response = pb.EmbedResponse(
            request_id=request.request_id,
            model=self.manifest.model.name,
            attention_layers=result.layers,
            attention_heads=result.heads,
        )
        if options.pooled:
            pooled = np.stack([text.pooled for text in result.texts if text.pooled is not None])
            response.pooled.CopyFrom(wire.encode(pooled, dtype))
        for text in result.texts:
            entry = response.results.add(token_count=text.token_count, truncated=text.truncated)
            if text.token_embeddings is not None:
                entry.token_embeddings.CopyFrom(wire.encode(text.token_embeddings, dtype))
            if text.attentions is not None:
                entry.attentions.CopyFrom(wire.encode(text.attentions, dtype))
        return response

    @staticmethod
    def build_info(
        settings: Settings, manifest: Manifest, engine: Engine, tokenizer: TextTokenizer
    ) -> pb.InfoResponse:
        model = manifest.model
        return pb.InfoResponse(
            model_name=model.name,
            model_source=model.source,
            hidden_size=model.hidden_size,
            num_layers=model.num_layers,
            num_heads=model.num_heads,
            pooling=model.pooling,
            normalize=model.normalize,
            default_max_tokens=min(manifest.tokenizer.default_max_tokens, tokenizer.max_tokens),
            limits=pb.Limits(
                max_texts_per_request=settings.max_texts_per_request,
                max_chars_per_text=settings.max_chars_per_text,
                max_tokens_per_text=tokenizer.max_tokens,
                max_attention_elements=settings.max_attention_elements,
                max_receive_message_bytes=settings.max_receive_message_bytes,
                max_send_message_bytes=settings.max_send_message_bytes,
                max_queue_texts=settings.max_queue_texts,
            ),
            precision=settings.precision,
            execution_provider=engine.provider,
            attention_maps=engine.supports_maps(),
            artifact_sha256=manifest.artifact_hash,
            server_version=attnserve_version(),
            onnxruntime_version=onnxruntime.__version__,
        )
