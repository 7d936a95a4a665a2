"""A request's JSON body, read once for every HTTP route (OpenAI embeddings, rerank, predict).

Each way a body can be wrong gets its own plain answer instead of a 500: over the size limit
(413), a client that left before sending it (CANCELLED), not JSON, nested deeper than Python's
stack (both 400), or JSON that is not an object (400).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from attnserve.service.server.errors import Code, ServiceError, invalid


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
        raise invalid("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body
