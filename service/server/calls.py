"""What every call goes through, whichever protocol carried it: a request id, the drain check,
a tracing span, metrics and a log line; and, for gRPC, failures turned into status codes.

The protocols' cells (`v1/`, `oip/`, `http/`) share one
`Front`: the same metrics (labelled by protocol), tracer and drain state, so a call is counted,
logged and refused during shutdown the same way whatever it spoke.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

from google.protobuf.message import DecodeError, Message
from grpc import aio

from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.logs import request_id_var
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.routed import open_route
from attnserve.service.server.status import abort, status_of
from attnserve.service.server.tracing import Tracer

log = logging.getLogger(__name__)
# grpc ships no type stubs: the servicer context is untyped to mypy.
Context: TypeAlias = Any

# Generated request ids: a random per-process prefix and a counter, unique without a syscall per
# request (uuid4 reads the kernel's random source each time).
ID_PREFIX = uuid.uuid4().hex[:16]
ID_COUNTER = itertools.count()


def shutting_down() -> ServiceError:
    """What a call that arrives while the server drains is told (a new error each time: raised
    errors carry their traceback)."""
    return ServiceError(Code.UNAVAILABLE, "server is shutting down; retry elsewhere")


# The caller's deadline was set before its request travelled, so its expiry reaches us as a
# cancel a little before our own deadline (one-way latency plus scheduling on a busy server): a
# cancel this close to the deadline is counted as the deadline passing.
DEADLINE_SLACK_S = 0.05


@dataclass
class Front:
    """The state every protocol adapter shares."""

    metrics: Metrics
    tracer: Tracer
    version: str = "unknown"  # attnserve's, for the protocols' metadata calls
    ready: bool = False  # warm and not draining (health SERVING)
    accepting: bool = True  # False once draining: new calls are refused with UNAVAILABLE


def request_id(given: str | None) -> str:
    """The caller's request id (capped), or a new one; stamped on every log line."""
    chosen = str(given)[:128] if given else f"{ID_PREFIX}{next(ID_COUNTER):016x}"
    request_id_var.set(chosen)
    return chosen


class CallRecord:
    """One call's bookkeeping, transport-neutral: in-flight gauge, span, metrics, log line."""

    def __init__(self, front: Front, protocol: str, method: str, request_id: str) -> None:
        self.front = front
        self.protocol = protocol
        self.method = method
        self.request_id = request_id
        self.started = time.perf_counter()
        # A route of its own: one asyncio task may carry several calls (an HTTP keep-alive
        # connection), and a stream's requests record into it (routed.py).
        self.route = open_route()
        self.span: AbstractContextManager[Any] = front.tracer.request(method, request_id)
        front.metrics.in_flight.inc()
        self.span.__enter__()

    def end(self, status: str, error: BaseException | None = None) -> None:
        self.span.__exit__(type(error) if error else None, error, None)
        metrics = self.front.metrics
        metrics.in_flight.dec()
        elapsed = time.perf_counter() - self.started
        model, task = self.route.labels
        metrics.observe_call(self.protocol, self.method, status, elapsed, model, task)
        log.debug(
            "rpc protocol=%s method=%s code=%s duration_ms=%.2f model=%s task=%s",
            self.protocol,
            self.method,
            status,
            elapsed * 1000,
            model,
            task,
        )

    def failed(self, error: BaseException) -> ServiceError:
        """Record and log a failed call; returns what to answer (see `answer_for`)."""
        answer = answer_for(error, self.request_id)
        self.end(status_of(answer).name, error)
        if isinstance(error, ServiceError):
            log.warning(
                "rpc protocol=%s method=%s code=%s error=%r",
                self.protocol,
                self.method,
                status_of(answer).name,
                error.message,
            )
        else:
            log.error("%s failed with an internal error", self.method, exc_info=error)
        return answer


def answer_for(error: BaseException, request_id: str) -> ServiceError:
    """What a client is told about a failure: a domain failure as it is, a server fault as
    INTERNAL naming the request id (never the fault's own words). The one wording for every
    protocol, and for a stream's inline failures too."""
    if isinstance(error, ServiceError):
        return error
    return ServiceError(Code.INTERNAL, f"internal error (request id {request_id})")


class GrpcCall:
    """The envelope of a gRPC call: `async with GrpcCall(...)` around the handler's work.

    `__aexit__` returns None: it never swallows an exception, it replaces domain failures with
    the call's status (`abort` raises). The request id goes back in trailing metadata, which
    travels with the status in the response's last frame: no extra write (sending initial
    metadata early cost a syscall per call, ~20% of a request's CPU), and it comes back on
    failures as well as on success.
    """

    def __init__(self, front: Front, protocol: str, method: str, context: Context) -> None:
        self.front = front
        self.protocol = protocol
        self.method = method
        self.context = context
        self.record: CallRecord | None = None

    async def __aenter__(self) -> str:
        given = None
        for key, value in self.context.invocation_metadata() or ():
            if key == "x-request-id":
                given = value
        call_id = request_id(given)
        self.context.set_trailing_metadata((("x-request-id", call_id),))
        self.record = CallRecord(self.front, self.protocol, self.method, call_id)
        if not self.front.accepting:
            await self.finish(shutting_down())
        return call_id

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.finish(error)

    async def finish(self, error: BaseException | None) -> None:
        """Record the call, then turn a failure into its status code (`abort` raises). The
        record comes first: `abort` answers the client at once, and a scrape right after the
        answer must already count the call."""
        assert self.record is not None
        if error is None:
            self.record.end("OK")
            return
        if isinstance(error, asyncio.CancelledError | aio.AbortError | GeneratorExit):
            # gRPC cancels the handler both when the caller leaves and when the call's
            # deadline passes: count what the caller saw (DEADLINE_SLACK_S says why "close").
            remaining = self.context.time_remaining()
            expired = remaining is not None and remaining <= DEADLINE_SLACK_S
            self.record.end("DEADLINE_EXCEEDED" if expired else "CANCELLED", error)
            return
        answer = self.record.failed(error)
        await abort(self.context, status_of(answer), answer.message)


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


def deadline_of(context: Context) -> float | None:
    """The call's deadline on the monotonic clock, if it has one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
