"""The one map from the domain's error codes to gRPC status codes.

Used by the gRPC envelope (unary calls), the v1 streams' inline errors and the auth
interceptor, so a client sees the same code for the same failure whichever way it called.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from attnserve.service.server.errors import Code, ServiceError

STATUS: dict[Code, grpc.StatusCode] = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Code.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    Code.CANCELLED: grpc.StatusCode.CANCELLED,
    Code.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Code.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Code.INTERNAL: grpc.StatusCode.INTERNAL,
}


def status_of(error: ServiceError) -> grpc.StatusCode:
    """The status a failure is answered with over gRPC: its code's, or its own where a protocol
    answers that refusal with a status of its own (`grpc_status`: tei.v1 says
    FAILED_PRECONDITION where TEI does), as HTTP's `http_status` carries 413 for a body."""
    status: grpc.StatusCode = getattr(error, "grpc_status", STATUS[error.code])
    return status


def status_number(code: Code) -> int:
    """The numeric status code, as the stream's inline `Error.code` carries it."""
    number: int = STATUS[code].value[0]
    return number


async def abort(context: Any, code: Code | grpc.StatusCode, message: str) -> NoReturn:
    """End the call with this status; `context.abort` raises, so this never returns."""
    await context.abort(STATUS[code] if isinstance(code, Code) else code, message)
    raise AssertionError("context.abort returned")
