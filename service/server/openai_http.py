"""OpenAI-compatible embeddings over HTTP, in the gRPC server's event loop: a thin adapter.

    POST /v1/embeddings   {"input": str | [str], "model": str, "encoding_format": "float" |
                           "base64", "dimensions": int}   (and, beyond OpenAI's API,
                           "truncate" and TEI's "truncation_direction": see `truncation_of`;
                           "chunking": true to embed them as pooled windows, "chunk_overlap":
                           int; each item's "attnserve" extension then says its "windows")
    GET  /v1/models       the models served
    GET  /health          200 while ready, 503 otherwise (no token needed)

The `openai` SDKs, LangChain, LlamaIndex and most RAG tooling speak this. Requests enter the same
embed task (of the model named, found in the registry), batcher, limits, metrics (protocol
"openai") and logs as `attnserve.v1`; this module only translates JSON and maps failures onto
OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`) and HTTP statuses.
Like OpenAI's API, an over-long input is an error unless the request asks for truncation. Each
data item carries, beside OpenAI's fields, `"attnserve": {"tokens": n, "truncated": bool}` (the
tokens the model saw and whether the text was cut); the SDKs keep unknown fields, and `usage`
counts the tokens actually used.
aiohttp: well kept, and it runs in the event loop gRPC already uses, so the HTTP path adds no
thread hop.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np
from aiohttp import web

from attnserve.service.server.auth import REFUSAL, Tokens, token_of
from attnserve.service.server.calls import CallRecord, Front, request_id, shutting_down
from attnserve.service.server.embed import EmbedTask
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.http_body import json_object
from attnserve.service.server.listeners import bind_sockets
from attnserve.service.server.models import Registry
from attnserve.service.server.options import EmbedOptions, Truncation
from attnserve.service.server.settings import Settings

PROTOCOL = "openai"
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
ERROR_TYPE = {
    Code.INVALID_ARGUMENT: ("invalid_request_error", None),
    Code.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    Code.NOT_FOUND: ("invalid_request_error", "model_not_found"),
    Code.RESOURCE_EXHAUSTED: ("rate_limit_error", "rate_limit_exceeded"),
    Code.UNAVAILABLE: ("server_error", "service_unavailable"),
}
Handler = Callable[[web.Request], Awaitable[web.Response]]


def error_response(error: ServiceError, request_id: str) -> web.Response:
    kind, code = ERROR_TYPE.get(error.code, ("server_error", None))
    body = {"error": {"message": error.message, "type": kind, "param": None, "code": code}}
    status = getattr(error, "http_status", HTTP_STATUS[error.code])
    return web.json_response(body, status=status, headers={"x-request-id": request_id})


def texts_of(body: dict[str, Any]) -> list[str]:
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and all(isinstance(item, str) for item in given):
        return given
    if isinstance(given, list) and given and all(isinstance(i, int | list) for i in given):
        raise invalid("token-id inputs are not supported by this server; send text")
    raise invalid("'input' must be a string or a list of strings")


def options_of(body: dict[str, Any]) -> tuple[EmbedOptions, str]:
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
        raise invalid("'dimensions' must be an integer")
    chunking = body.get("chunking")
    if chunking is not None and not isinstance(chunking, bool):
        raise invalid("'chunking' must be true or false")
    overlap = body.get("chunk_overlap")
    if overlap is not None and (
        not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0
    ):
        raise invalid("'chunk_overlap' must be a non-negative integer")
    options = EmbedOptions(
        truncation=truncation_of(body),
        dimensions=dimensions,
        chunking=chunking,
        chunk_overlap=overlap,
    )
    return options, encoding


TRUNCATE_WORDS = {"end": Truncation.END, "start": Truncation.START, "none": Truncation.NONE}
DIRECTIONS = {"right": Truncation.END, "left": Truncation.START}  # TEI's names for the sides


def truncation_of(body: dict[str, Any]) -> Truncation:
    """What to do with an over-long text, from `truncate` and TEI's `truncation_direction`.

    `truncate` says whether to cut, and may name the side: false / "none" (the default, as in
    OpenAI's API) refuse; true cuts at the end, unless `truncation_direction` says "left";
    "end" / "start" cut there. `truncation_direction` ("right" | "left", any case) only picks
    the side, as in TEI: without `truncate` it cuts nothing. A side named twice must agree
    ("start" with "right" is refused), so a request never gets a side it did not ask for."""
    truncate = body.get("truncate")
    if truncate is None:  # absent or null: OpenAI's default
        truncate = False
    direction = body.get("truncation_direction")
    side = None
    if direction is not None:
        if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
            raise invalid("'truncation_direction' must be 'left' or 'right'")
        side = DIRECTIONS[direction.lower()]
    if isinstance(truncate, bool):
        if not truncate:
            return Truncation.NONE
        return side or Truncation.END
    if not isinstance(truncate, str) or truncate not in TRUNCATE_WORDS:
        raise invalid("'truncate' must be true, false, 'end', 'start' or 'none'")
    chosen = TRUNCATE_WORDS[truncate]
    if chosen is not Truncation.NONE and side is not None and side is not chosen:
        raise invalid(
            f"'truncate': {truncate!r} contradicts 'truncation_direction': {direction!r} "
            "(left keeps the end, as 'start' does; right keeps the start, as 'end' does)"
        )
    return chosen


class Routes(Protocol):
    """More routes on the same app and envelope (`rerank_http.RerankRoutes`)."""

    def add_to(
        self, app: web.Application, envelope: Callable[[str, Handler, str], Handler]
    ) -> None: ...


class EmbeddingsApp:
    def __init__(
        self,
        models: Registry,
        front: Front,
        tokens: Tokens | None,
        routes: Sequence[Routes] = (),
    ) -> None:
        self.models = models
        self.front = front
        self.tokens = tokens
        self.created = int(time.time())
        self.routes = routes

    def application(self, max_body_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_body_bytes)
        app.router.add_post("/v1/embeddings", self.call("embeddings", self.embeddings))
        app.router.add_get("/v1/models", self.call("models", self.list_models))
        app.router.add_get("/health", self.health)
        for routes in self.routes:
            routes.add_to(app, self.call)
        return app

    def call(self, method: str, handler: Handler, protocol: str = PROTOCOL) -> Handler:
        """The envelope: request id, auth, drain, metrics and log, failures as OpenAI errors."""

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
                return error_response(record.failed(failure), call_id)
            except BaseException as gone:  # the handler was cancelled (server stopping)
                record.end("CANCELLED", gone)
                raise
            record.end("OK")
            response.headers["x-request-id"] = call_id
            return response

        return enveloped

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.find(body.get("model"))  # its name or an alias
        texts = texts_of(body)
        options, encoding = options_of(body)
        result = await model.task(EmbedTask).embed(texts, options, None)
        assert result.pooled is not None
        vectors = np.ascontiguousarray(result.pooled, dtype="<f4")
        data: list[dict[str, Any]] = [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode(vector, encoding),
                # attnserve's extension: what this text used (OpenAI's API has no such field).
                "attnserve": {"tokens": text.token_count, "truncated": text.truncated},
            }
            for index, (vector, text) in enumerate(zip(vectors, result.texts, strict=True))
        ]
        if model.limits.chunking if options.chunking is None else options.chunking:
            for item, text in zip(data, result.texts, strict=True):
                item["attnserve"]["windows"] = text.windows

        tokens = sum(text.token_count for text in result.texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def list_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": model.name, "object": "model", "created": self.created, "owned_by": "attnserve"}
            for model in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        ready = self.front.ready and self.front.accepting
        return web.json_response(
            {"status": "ok" if ready else "unavailable"}, status=200 if ready else 503
        )


def encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32 bytes, as OpenAI's API sends them
        return base64.b64encode(vector.tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values


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
    settings: Settings, app: EmbeddingsApp, reuse_port: bool
) -> tuple[web.AppRunner, int]:
    """Serve `app` on `settings.http_port` (0 picks one); returns the runner and the port."""
    runner = web.AppRunner(app.application(settings.max_receive_message_bytes), access_log=None)
    await runner.setup()
    sockets = bind_sockets(settings.host, settings.http_port, "--http-port", reuse_port=reuse_port)
    for sock in sockets:  # every address of the host (see listeners.py)
        await web.SockSite(runner, sock, ssl_context=ssl_context(settings)).start()
    port = int(sockets[0].getsockname()[1])
    return runner, port
