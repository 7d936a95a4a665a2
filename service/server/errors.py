"""Every failure a client can see, named once, with no transport in sight.

Domain code (pipeline, batcher, tokenizer) raises `ServiceError(Code.X, message)`; each protocol
maps `Code` to its own status once (`status.py` for gRPC). Anything else that escapes a call is
INTERNAL with a request id, never a traceback. `StartupError` is the one base of everything that
stops the server before it serves, so the command reports them all the same way.
"""

from __future__ import annotations

from enum import Enum


class Code(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"  # a model or version this server does not serve
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    UNAUTHENTICATED = "unauthenticated"
    INTERNAL = "internal"


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


class StartupError(RuntimeError):
    """The server cannot start with these settings or this artifact; the message says why (one
    line, naming the flag) and `exit_code` is the command's (`startup_errors.ExitCode`)."""

    exit_code: int = 2
