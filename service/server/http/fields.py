"""The HTTP protocol's kit: what every route set shares between JSON and the tasks.

A request's JSON body read once (each way a body can be wrong gets its own plain answer instead
of a 500: over the size limit 413, a client that left before sending it CANCELLED, not JSON or
nested deeper than Python's stack 400, not an object 400); the one reader of each kind of field
(a flag, a count, a list of strings, truncation); vectors as JSON floats or base64; and the types
a route set is written against (`Handler`, `Envelope`, `RouteSet`). The route sets
(`openai.py`, `rerank.py`, `late_chunking.py`) import this and the tasks, never each other.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.options import Truncation
from attnserve.service.server.registry import ServedModel

Handler = Callable[[web.Request], Awaitable[web.Response]]
# How a route's failures are answered: OpenAI's {"error": {"message", "type", ...}} (every
# route but TEI's) or TEI's {"error", "error_type"} with TEI's statuses (app.py maps both).
ErrorShape = Literal["openai", "tei"]


class Envelope(Protocol):
    """The app's envelope around a route's handler (request id, auth, drain, metrics, log,
    failures in the route's error shape): (method label, handler, protocol label) -> handler."""

    def __call__(
        self, method: str, handler: Handler, protocol: str, errors: ErrorShape = "openai"
    ) -> Handler: ...


@dataclass(frozen=True)
class RouteDoc:
    """One route as the API reference (`openapi.py`: GET /openapi.json, /docs) shows it: the
    route set that adds it says it, beside the handler."""

    method: Literal["get", "post"]
    path: str
    summary: str
    body: type[BaseModel] | None = None  # the request body's model (its example included)
    errors: ErrorShape = "openai"


class RouteSet(Protocol):
    """Routes one cell adds to the HTTP app, each wrapped in the app's envelope, and their
    reference (`docs`: every route it adds, a test keeps them equal)."""

    @property
    def docs(self) -> tuple[RouteDoc, ...]: ...

    def add_to(self, app: web.Application, envelope: Envelope) -> None: ...


def body_config(example: dict[str, Any]) -> ConfigDict:
    """A request body model's settings: unknown fields ignored (as every route reads JSON), and
    the example the API reference shows (tests/clients posts it to the real route)."""
    return ConfigDict(extra="ignore", frozen=True, json_schema_extra={"examples": [example]})


class BadRequestError(ServiceError):
    """A body no JSON parser reads: 400 on every route (TEI answers data it cannot use 422,
    but bytes that are not JSON 400, as axum's Json extractor does)."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(Code.INVALID_ARGUMENT, message)


class BodyTooLargeError(ServiceError):
    """A body over the size limit: RESOURCE_EXHAUSTED as gRPC counts it, but HTTP's own 413
    (a 429 would tell the client to retry what can never fit)."""

    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            Code.RESOURCE_EXHAUSTED, f"the request body is over the limit of {limit} bytes"
        )


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLargeError(request.app._client_max_size) from None
    except ConnectionResetError:  # the client left before its body arrived: not our fault
        raise ServiceError(Code.CANCELLED, "the client left before sending its body") from None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise BadRequestError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body


def is_count(value: object) -> bool:
    """An integer, and not a bool (JSON's true is Python's 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def flag(body: dict[str, Any], field: str, default: bool) -> bool:
    value = body.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"'{field}' must be true or false")
    return value


def optional_flag(body: dict[str, Any], field: str) -> bool | None:
    """A flag whose absence means "the model's default" (None)."""
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise invalid(f"'{field}' must be true or false")
    return value


def count(body: dict[str, Any], field: str, non_negative: bool = False) -> int | None:
    """An optional integer field (None when absent or null)."""
    value = body.get(field)
    if value is None:
        return None
    if not is_count(value) or (non_negative and value < 0):
        raise invalid(f"'{field}' must be a{' non-negative' if non_negative else 'n'} integer")
    assert isinstance(value, int)
    return value


def strings(body: dict[str, Any], field: str) -> list[str]:
    """A list of strings (Cohere and Jina also allow {"text": ...} objects)."""
    given = body.get(field)
    if not isinstance(given, list):
        raise invalid(f"'{field}' must be a list of strings")
    texts = []
    for item in given:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            item = item["text"]
        if not isinstance(item, str):
            raise invalid(f"'{field}' must be a list of strings (or {{\"text\": ...}} objects)")
        texts.append(item)
    return texts


TRUNCATE_WORDS = {"end": Truncation.END, "start": Truncation.START, "none": Truncation.NONE}
DIRECTIONS = {"right": Truncation.END, "left": Truncation.START}  # TEI's names for the sides


def truncation(body: dict[str, Any], default: bool) -> Truncation:
    """What to do with an over-long text, from `truncate` and TEI's `truncation_direction`: the
    one reading every route shares; `default` is what an absent (or null) `truncate` means
    (refuse, as OpenAI's API, for embeddings; cut, as TEI, for rerank and predict).

    `truncate` says whether to cut, and may name the side: false / "none" refuse; true cuts at
    the end, unless `truncation_direction` says "left"; "end" / "start" cut there.
    `truncation_direction` ("right" | "left", any case) only picks the side, as in TEI: with
    `truncate` false it cuts nothing. A side named twice must agree ("start" with "right" is
    refused), so a request never gets a side it did not ask for."""
    truncate = body.get("truncate")
    if truncate is None:
        truncate = default
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


def encoding_format(body: dict[str, Any]) -> str:
    """How vectors travel: "float" (JSON numbers, the default) or "base64"."""
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    assert isinstance(encoding, str)
    return encoding


def encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    """One vector as JSON floats, or base64 of its little-endian float32 bytes (as OpenAI's
    API sends them)."""
    if encoding == "base64":
        little = np.ascontiguousarray(vector, dtype="<f4")
        return base64.b64encode(little.tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values


def token_ids_refusal(model: ServedModel) -> str:
    """Why token-id inputs are refused, and the fix: ids are only meaningful in the vocabulary
    that made them (LangChain's OpenAIEmbeddings sends tiktoken's by default); read in this
    model's vocabulary they would give wrong vectors without a word (as TEI and vLLM do)."""
    return (
        f"token-id inputs are refused: {model.name!r} reads text with its own "
        f"{model.tokenizer.kind} tokenizer (its artifact's tokenizer.json), so ids from another "
        "tokenizer (tiktoken's, which LangChain's OpenAIEmbeddings sends by default) would mean "
        "other words; send text (LangChain: OpenAIEmbeddings(..., "
        "check_embedding_ctx_length=False))"
    )
