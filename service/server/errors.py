"""Every failure a client can see, named once and mapped once to a gRPC status code.

Domain code raises `ServiceError(Code.X, message)`; the API layer turns it into a status with
`abort`. Anything else that escapes is INTERNAL with a request id, never a traceback.
"""

from __future__ import annotations

from enum import Enum

import grpc


class Code(Enum):
    INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
    RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
    DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED
    CANCELLED = grpc.StatusCode.CANCELLED
    UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
    UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
    INTERNAL = grpc.StatusCode.INTERNAL

    @property
    def status(self) -> grpc.StatusCode:
        status: grpc.StatusCode = self.value
        return status


class ServiceError(Exception):
    """A failure with a client-facing message; never carries secrets or tracebacks."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r})"


def invalid(message: str) -> ServiceError:
    return ServiceError(Code.INVALID_ARGUMENT, message)
