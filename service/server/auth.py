"""Optional bearer-token auth: one check shared by the gRPC interceptor and the HTTP endpoint;
tokens are compared in constant time and never logged. A refusal goes through the call envelope
(`calls.py`) like any other failure: counted, logged with its request id, and traced."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

from attnserve.service.server.calls import Front, GrpcCall
from attnserve.service.server.errors import Code, ServiceError

# Health checks and reflection stay open: probes and tooling carry no tokens.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


# One wording for gRPC (metadata) and HTTP (a header): both carry the same 'authorization'.
REFUSAL = "missing or invalid bearer token ('authorization: Bearer <token>')"


def token_of(header: str | bytes | None) -> str | None:
    """The token of an `authorization: Bearer <token>` value."""
    if header is None:
        return None
    text = header.decode() if isinstance(header, bytes) else header
    scheme, _, token = text.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return token_of(value)
    return None


class Tokens:
    """The accepted bearer tokens."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self.tokens = tuple(token.encode() for token in tokens)

    def allowed(self, token: str | None) -> bool:
        if token is None:
            return False
        given = token.encode()
        # Check every token so the time taken does not say which one came close.
        return any([hmac.compare_digest(given, known) for known in self.tokens])


class TokenAuthInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without an accepted token. `protocols` maps each served gRPC service to
    its protocol label; a method of no known service is counted as protocol and method
    "unknown" (callers choose method names: the metrics' labels must stay bounded)."""

    def __init__(self, tokens: Tokens, front: Front, protocols: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.front = front
        self.protocols = protocols

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        if method.startswith(OPEN_PREFIXES) or self.tokens.allowed(bearer_token(metadata)):
            return await continuation(handler_call_details)  # None: UNIMPLEMENTED, as usual
        return self.deny(method, await continuation(handler_call_details))

    def named(self, method: str, known: bool) -> tuple[str, str]:
        """The (protocol, method) labels of a refused call."""
        service, _, name = method.strip("/").partition("/")
        protocol = self.protocols.get(service)
        return (protocol, name) if known and protocol is not None else ("unknown", "unknown")

    def deny(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
        """A handler that refuses the call: UNAUTHENTICATED, for unknown methods too (a caller
        without a token learns nothing, not even which methods exist)."""
        protocol, name = self.named(method, handler is not None)
        front = self.front

        async def refuse(_request: Any, context: aio.ServicerContext[Any, Any]) -> None:
            async with GrpcCall(front, protocol, name, context):
                raise ServiceError(Code.UNAUTHENTICATED, REFUSAL)

        if handler is None:
            return grpc.unary_unary_rpc_method_handler(refuse)
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)
