"""The one HTTP app (`--http-port`), in the gRPC server's event loop: the envelope every route
runs in, the error map, health, TLS and the listeners; the route sets plug in.

aiohttp: well kept, and it runs in the event loop gRPC already uses, so the HTTP path adds no
thread hop. Every route set (`openai.py`, `rerank.py`, `late_chunking.py`) hands its handlers to
`HttpApp.call`, the envelope: request id, bearer-token auth, the drain check, metrics and the log
line (`calls.CallRecord`, as gRPC's envelope), and every failure answered as JSON with the HTTP
status of its code (`HTTP_STATUS`), never a traceback.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from attnserve.service.server.auth import REFUSAL, Tokens, token_of
from attnserve.service.server.calls import CallRecord, Front, request_id, shutting_down
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.http import openapi
from attnserve.service.server.http.fields import ErrorShape, Handler, RouteSet
from attnserve.service.server.listeners import bind_sockets
from attnserve.service.server.settings import Settings

HTTP_STATUS = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.NOT_FOUND: 404,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.CANCELLED: 499,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
}
# OpenAI's error shape: {"error": {"message", "type", "param", "code"}}; (type, code) per code.
ERROR_TYPE = {
    Code.INVALID_ARGUMENT: ("invalid_request_error", None),
    Code.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    Code.NOT_FOUND: ("invalid_request_error", "model_not_found"),
    Code.RESOURCE_EXHAUSTED: ("rate_limit_error", "rate_limit_exceeded"),
    Code.UNAVAILABLE: ("server_error", "service_unavailable"),
}


# text-embeddings-inference's error shape on its routes: {"error": message, "error_type"},
# with its status per type (router/src/http/server.rs: Validation and Tokenizer 422, Empty 400,
# Overloaded 429, Unhealthy 503, Backend 424); (status, error_type) per code.
TEI_ERROR = {
    Code.INVALID_ARGUMENT: (422, "Validation"),
    Code.UNAUTHENTICATED: (401, "Validation"),
    Code.NOT_FOUND: (404, "Validation"),
    Code.RESOURCE_EXHAUSTED: (429, "Overloaded"),
    Code.CANCELLED: (499, "Validation"),
    Code.INTERNAL: (424, "Backend"),
    Code.UNAVAILABLE: (503, "Unhealthy"),
    Code.DEADLINE_EXCEEDED: (504, "Backend"),
}


def http_status(error: ServiceError, errors: ErrorShape = "openai") -> int:
    """The status a failure is answered with (an error may carry its own: 413 for a body)."""
    mapped = HTTP_STATUS[error.code] if errors == "openai" else TEI_ERROR[error.code][0]
    status: int = getattr(error, "http_status", mapped)
    return status


def error_response(
    error: ServiceError, request_id: str, errors: ErrorShape = "openai"
) -> web.Response:
    body: dict[str, Any]
    if errors == "tei":
        kind = getattr(error, "tei_error_type", TEI_ERROR[error.code][1])
        body = {"error": error.message, "error_type": kind}
    else:
        kind, code = ERROR_TYPE.get(error.code, ("server_error", None))
        body = {"error": {"message": error.message, "type": kind, "param": None, "code": code}}
    status = http_status(error, errors)
    return web.json_response(body, status=status, headers={"x-request-id": request_id})


class HttpApp:
    def __init__(self, front: Front, tokens: Tokens | None, routes: Sequence[RouteSet]) -> None:
        self.front = front
        self.tokens = tokens
        self.routes = routes

    def application(self, max_body_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_body_bytes)
        for path in ("/health", "/ping", "/"):  # TEI's probes: /ping is SageMaker's
            app.router.add_get(path, self.health)
        # The reference, public as /health (it says what the routes take, nothing served).
        reference = json.dumps(openapi.document(self.routes))
        page = openapi.page(self.routes)

        async def spec(request: web.Request) -> web.Response:
            return web.Response(text=reference, content_type="application/json")

        async def docs(request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")

        app.router.add_get("/openapi.json", spec)
        app.router.add_get("/docs", docs)
        for routes in self.routes:
            routes.add_to(app, self.call)
        return app

    def call(
        self, method: str, handler: Handler, protocol: str, errors: ErrorShape = "openai"
    ) -> Handler:
        """The envelope: request id, auth, drain, metrics and log, failures as JSON errors in
        the route's shape."""

        async def enveloped(request: web.Request) -> web.Response:
            call_id = request_id(request.headers.get("x-request-id"))
            record = CallRecord(self.front, protocol, method, call_id)
            try:
                if self.tokens is not None and not self.tokens.allowed(
                    token_of(request.headers.get("authorization"))
                ):
                    raise ServiceError(Code.UNAUTHENTICATED, REFUSAL)
                if not self.front.accepting:
                    raise shutting_down()
                response = await handler(request)
            except Exception as failure:  # recorded and logged; never a traceback out
                return error_response(record.failed(failure), call_id, errors)
            except BaseException as gone:  # the handler was cancelled (server stopping)
                record.end("CANCELLED", gone)
                raise
            record.end("OK")
            response.headers["x-request-id"] = call_id
            return response

        return enveloped

    async def health(self, request: web.Request) -> web.Response:
        """200 while ready, 503 otherwise; no token needed (probes carry none)."""
        ready = self.front.ready and self.front.accepting
        return web.json_response(
            {"status": "ok" if ready else "unavailable"}, status=200 if ready else 503
        )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS (and mTLS) from the same files as the gRPC port."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca is not None:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start_http(
    settings: Settings, app: HttpApp, reuse_port: bool
) -> tuple[web.AppRunner, int]:
    """Serve `app` on `settings.http_port` (0 picks one); returns the runner and the port."""
    runner = web.AppRunner(app.application(settings.max_receive_message_bytes), access_log=None)
    await runner.setup()
    sockets = bind_sockets(settings.host, settings.http_port, "--http-port", reuse_port=reuse_port)
    for sock in sockets:  # every address of the host (see listeners.py)
        await web.SockSite(runner, sock, ssl_context=ssl_context(settings)).start()
    port = int(sockets[0].getsockname()[1])
    return runner, port
