"""The gRPC transport of `attnserve.v1`: protobuf <-> the pipeline's types, request ids,
status codes, per-call metrics.

Only this module knows about `attnserve.v1` messages and `ServicerContext`. It gets a built
`Pipeline` and the `Info` answer from the composition root (`app.py`); failures become status
codes through the one map in `status.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import numpy as np
from grpc import aio

from attnserve.service import wire
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.logs import request_id_var
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.options import AttentionRequest, EmbedOptions, Truncation
from attnserve.service.server.pipeline import EmbedResult, Pipeline
from attnserve.service.server.status import STATUS, abort, status_number
from attnserve.service.server.tokenizer import token_views
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
        prompt_name=options.prompt_name if options.HasField("prompt_name") else None,
    )
    dtype = enum_value(OUTPUT_DTYPES, options.output_dtype, "output_dtype")
    return parsed, dtype


def deadline_of(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class CallScope:
    """The envelope of every call: request id, draining, tracing, metrics, and failures turned
    into status codes. `__aexit__` returns None: it never swallows an exception, it replaces
    domain failures with the call's status (`abort` raises)."""

    def __init__(self, service: EmbedderService, method: str, context: Context) -> None:
        self.service = service
        self.method = method
        self.context = context
        self.status = "OK"
        self.started = time.perf_counter()
        self.request_id = ""
        self.span: AbstractContextManager[Any] | None = None

    async def __aenter__(self) -> str:
        self.request_id = request_id_of(self.context)
        self.service.metrics.in_flight.inc()
        if not self.service.accepting:
            unavailable = ServiceError(Code.UNAVAILABLE, "server is shutting down; retry elsewhere")
            await self.finish(unavailable)
        self.span = self.service.tracer.request(self.method, self.request_id)
        self.span.__enter__()
        return self.request_id

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.span is not None:
            self.span.__exit__(exc_type, error, traceback)
        await self.finish(error)

    async def finish(self, error: BaseException | None) -> None:
        """Record the call; a failure becomes its status code (`abort` raises)."""
        try:
            if error is None:
                return
            if isinstance(error, ServiceError):
                self.status = STATUS[error.code].name
                log.warning(
                    "rpc method=%s code=%s error=%r", self.method, self.status, error.message
                )
                await abort(self.context, error.code, error.message)
            if isinstance(error, asyncio.CancelledError | aio.AbortError | GeneratorExit):
                self.status = "CANCELLED"
                return
            self.status = "INTERNAL"
            log.error("%s failed with an internal error", self.method, exc_info=error)
            await abort(
                self.context, Code.INTERNAL, f"internal error (request id {self.request_id})"
            )
        finally:
            metrics = self.service.metrics
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - self.started
            metrics.observe_call(self.method, self.status, elapsed)
            log.debug(
                "rpc method=%s code=%s duration_ms=%.2f", self.method, self.status, elapsed * 1000
            )


def request_id_of(context: Context) -> str:
    """The caller's `x-request-id` (capped), or a new one; stamped on every log line."""
    given = dict(context.invocation_metadata() or ()).get("x-request-id")
    request_id = str(given)[:128] if given else uuid.uuid4().hex
    request_id_var.set(request_id)
    return request_id


class EmbedderService(embedder_pb2_grpc.EmbedderServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        info: pb.InfoResponse,
        metrics: Metrics,
        tracer: Tracer,
        max_stream_pending: int,
    ) -> None:
        self.pipeline = pipeline
        self.max_stream_pending = max_stream_pending
        self.info = info
        self.model_name = info.model_name
        self.metrics = metrics
        self.tracer = tracer
        self.accepting = True

    def scope(self, method: str, context: Context) -> CallScope:
        return CallScope(self, method, context)

    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        async with self.scope("Embed", context) as request_id:
            await context.send_initial_metadata((("x-request-id", request_id),))
            return await self.embed(request, deadline_of(context))

    async def EmbedStream(
        self, request_iterator: AsyncIterator[pb.EmbedRequest], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Requests run concurrently; each response (or its error) is sent as it completes."""
        async with self.scope("EmbedStream", context) as request_id:
            await context.send_initial_metadata((("x-request-id", request_id),))
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
                response = error_response(request, error.code, error.message)
            except Exception:
                log.exception("EmbedStream request %r failed", request.request_id)
                response = error_response(request, Code.INTERNAL, "internal error")
            await responses.put(response)

        # At most `max_stream_pending` requests of this stream in progress: past that the
        # stream stops reading (HTTP/2 flow control pushes back on the client). Finished tasks
        # leave the set as they finish, so a long stream holds only what is in flight.
        slots = asyncio.Semaphore(self.max_stream_pending)
        pending: set[asyncio.Task[None]] = set()

        def release(task: asyncio.Task[None]) -> None:
            pending.discard(task)
            slots.release()

        try:
            async for request in request_iterator:
                await slots.acquire()
                task = asyncio.create_task(one(request))
                pending.add(task)
                task.add_done_callback(release)
            await asyncio.gather(*pending)
        finally:
            for task in list(pending):
                task.cancel()
            await responses.put(None)

    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        async with self.scope("Tokenize", context):
            truncation = enum_value(TRUNCATIONS, request.truncate, "truncate")
            prompt = self.pipeline.prompts.resolve(
                request.prompt_name if request.HasField("prompt_name") else None
            )
            encoded = await self.pipeline.tokenize_off_loop(
                list(request.texts), truncation, request.max_tokens or None, prompt
            )
            texts = []
            for text in encoded:
                tokens = [
                    pb.Token(
                        id=view.id,
                        text=view.text,
                        start=view.start,
                        end=view.end,
                        special=view.special,
                        prompt=view.prompt,
                    )
                    for view in token_views(text)
                ]
                texts.append(pb.TokenizedText(tokens=tokens, truncated=text.truncated))
            return pb.TokenizeResponse(texts=texts, prompt_name=prompt.name)

    async def Info(self, request: pb.InfoRequest, context: Context) -> pb.InfoResponse:
        async with self.scope("Info", context):
            return self.info

    async def embed(self, request: pb.EmbedRequest, deadline: float | None) -> pb.EmbedResponse:
        started = time.perf_counter()
        options, dtype = options_from_proto(request.options)
        result = await self.pipeline.embed(list(request.texts), options, deadline)
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
            model=self.model_name,
            attention_layers=result.layers,
            attention_heads=result.heads,
            prompt_name=result.prompt_name,
        )
        if options.pooled:
            pooled = np.stack([text.pooled for text in result.texts if text.pooled is not None])
            response.pooled.CopyFrom(wire.encode(pooled, dtype))
        for text in result.texts:
            entry = response.results.add(
                token_count=text.token_count,
                truncated=text.truncated,
                prompt_tokens=text.prompt_tokens,
            )
            if text.token_embeddings is not None:
                entry.token_embeddings.CopyFrom(wire.encode(text.token_embeddings, dtype))
            if text.attentions is not None:
                entry.attentions.CopyFrom(wire.encode(text.attentions, dtype))
        return response


def error_response(request: pb.EmbedRequest, code: Code, message: str) -> pb.EmbedResponse:
    """A stream's inline failure: the request id, the status number and the message."""
    return pb.EmbedResponse(
        request_id=request.request_id, error=pb.Error(code=status_number(code), message=message)
    )
