"""The gRPC transport of `attnserve.v1`: protobuf <-> the pipeline's types, request ids,
status codes, per-call metrics.

Only this module knows about `attnserve.v1` messages and `ServicerContext`. It gets a built
`Pipeline` and the `Info` answer from the composition root (`app.py`); failures become status
codes through the one map in `status.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc import aio

from attnserve.service import wire
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.logs import request_id_var
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.options import AttentionRequest, EmbedOptions, Truncation
from attnserve.service.server.pipeline import EmbedResult, Pipeline
from attnserve.service.server.status import STATUS, abort, status_number
from attnserve.service.server.tracing import Tracer
from attnserve.v1 import embedder_pb2 as pb

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
    dtype = enum_value(OUTPUT_DTYPES, options.output_dtype, "output_dtype")
    parsed = EmbedOptions(
        pooled=options.pooled if options.HasField("pooled") else True,
        token_embeddings=options.token_embeddings,
        normalize=options.normalize if options.HasField("normalize") else None,
        truncation=enum_value(TRUNCATIONS, options.truncate, "truncate"),
        attention=attention,
        max_tokens=options.max_tokens or None,
        float_bytes=wire.WIRE_DTYPES[dtype].itemsize,
    )
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
        # Trailing metadata travels with the status in the response's last frame: no extra
        # write (sending initial metadata early cost a syscall per call, ~20% of a request's
        # CPU), and it comes back on failures as well as on success.
        self.context.set_trailing_metadata((("x-request-id", self.request_id),))
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
                # gRPC cancels the handler both when the caller leaves and when the call's
                # deadline passes: count what the caller saw.
                remaining = self.context.time_remaining()
                expired = remaining is not None and remaining <= 0
                self.status = "DEADLINE_EXCEEDED" if expired else "CANCELLED"
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


# Generated request ids: a random per-process prefix and a counter, unique without a syscall per
# request (uuid4 reads the kernel's random source each time).
ID_PREFIX = uuid.uuid4().hex[:16]
ID_COUNTER = itertools.count()


def request_id_of(context: Context) -> str:
    """The caller's `x-request-id` (capped), or a new one; stamped on every log line."""
    given = None
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            given = value
    request_id = str(given)[:128] if given else f"{ID_PREFIX}{next(ID_COUNTER):016x}"
    request_id_var.set(request_id)
    return request_id


M = TypeVar("M", bound=Message)


def parse(message_type: type[M], data: bytes) -> M:
    """Requests arrive as bytes and are parsed here, inside the call's envelope, so a payload
    that is not a valid message gets INVALID_ARGUMENT with a plain message (gRPC's own
    deserializer would answer UNKNOWN and name a Python exception class)."""
    try:
        return message_type.FromString(data)
    except DecodeError as error:
        reason = str(error).rpartition(": ")[2] or "it could not be decoded"
        raise invalid(
            f"the request is not a valid {message_type.DESCRIPTOR.full_name} message ({reason})"
        ) from None


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

    async def Embed(self, data: bytes, context: Context) -> pb.EmbedResponse:
        async with self.scope("Embed", context):
            return await self.embed(parse(pb.EmbedRequest, data), deadline_of(context))

    async def EmbedStream(
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Requests run concurrently; each response (or its error) is sent as it completes."""
        async with self.scope("EmbedStream", context):
            # Bounded like the requests in progress: a client that never reads its responses
            # stops the stream's reading (and its work) instead of piling answers up here.
            responses: asyncio.Queue[pb.EmbedResponse | None] = asyncio.Queue(
                self.max_stream_pending
            )
            reader = asyncio.create_task(self.read_stream(request_iterator, context, responses))
            try:
                while (response := await responses.get()) is not None:
                    yield response
                await reader  # surfaces a broken request stream
            finally:
                reader.cancel()

    async def read_stream(
        self,
        request_iterator: AsyncIterator[bytes],
        context: Context,
        responses: asyncio.Queue[pb.EmbedResponse | None],
    ) -> None:
        async def one(data: bytes) -> None:
            request_id = ""
            try:
                request = parse(pb.EmbedRequest, data)
                request_id = request.request_id
                response = await self.embed(request, deadline_of(context))
            except ServiceError as error:
                response = error_response(request_id, error.code, error.message)
            except Exception:
                log.exception("EmbedStream request %r failed", request_id)
                response = error_response(request_id, Code.INTERNAL, "internal error")
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

    async def Tokenize(self, data: bytes, context: Context) -> pb.TokenizeResponse:
        async with self.scope("Tokenize", context):
            request = parse(pb.TokenizeRequest, data)
            truncation = enum_value(TRUNCATIONS, request.truncate, "truncate")
            encoded = await self.pipeline.tokenize_off_loop(
                list(request.texts), truncation, request.max_tokens or None, offsets=True
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
                    for i in text.kept_positions()
                ]
                texts.append(pb.TokenizedText(tokens=tokens, truncated=text.truncated))
            return pb.TokenizeResponse(texts=texts)

    async def Info(self, data: bytes, context: Context) -> pb.InfoResponse:
        async with self.scope("Info", context):
            parse(pb.InfoRequest, data)
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
        )
        if result.pooled is not None:
            response.pooled.CopyFrom(wire.encode(result.pooled, dtype))
        for text in result.texts:
            entry = response.results.add(token_count=text.token_count, truncated=text.truncated)
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
