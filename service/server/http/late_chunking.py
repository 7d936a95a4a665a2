"""Late chunking over HTTP, on the `--http-port` app: `POST /v1/late_chunking`.

    {"model": str (optional), "documents": [{"text": str, "spans": [[start, end], ...]}
     | {"text": str, "tokens_per_chunk": N}], "truncate": false, "truncation_direction":
     "right" | "left", "normalize": bool, "encoding_format": "float" | "base64"}
    -> {"object": "list", "model", "data": [{"object": "document", "index", "token_count",
        "truncated", "chunks": [{"index", "start", "end", "token_count", "truncated",
        "outside", "embedding": [float] | base64 | null}]}], "usage": {"prompt_tokens",
        "total_tokens"}}

A route of its own rather than an extension of `/v1/embeddings`: a request here carries
documents with spans and answers several vectors per document, which OpenAI's `input` -> `data[i]`
shape cannot say without changing what `data[i]` means to the SDKs that read it (Jina's
`late_chunking` flag does exactly that: it reads the inputs as the chunks of one concatenated
document). The same task as attnserve.v1's EmbedChunks (limits, refusals, vectors), inside the
HTTP app's envelope (request id, auth, drain, failures as JSON errors with HTTP statuses; the
calls are counted under protocol "http"). Spans are in Unicode code points (Python str indices),
not JavaScript's UTF-16 units. Attention maps are EmbedChunks' only (JSON would bloat them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.fields import (
    Envelope,
    RouteDoc,
    count,
    encode,
    encoding_format,
    is_count,
    json_object,
    optional_flag,
    truncation,
)
from attnserve.service.server.http.late_chunking_bodies import LateChunkingBody
from attnserve.service.server.options import ChunkDocument, LateChunkOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.tasks.late_chunking import LateChunkResult, LateChunkTask

PROTOCOL = "http"


def spans_of(given: object, index: int) -> tuple[tuple[int, int], ...]:
    if not isinstance(given, list) or not all(
        isinstance(span, list) and len(span) == 2 and all(is_count(v) for v in span)
        for span in given
    ):
        raise invalid(f"document {index}: 'spans' must be a list of [start, end] integer pairs")
    return tuple((span[0], span[1]) for span in given)


def documents_of(body: dict[str, Any]) -> list[ChunkDocument]:
    given = body.get("documents")
    if not isinstance(given, list):
        raise invalid('\'documents\' must be a list of {"text", "spans" | "tokens_per_chunk"}')
    documents = []
    for index, item in enumerate(given):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise invalid(f"document {index} must be an object with a string 'text'")
        spans = spans_of(item["spans"], index) if "spans" in item else ()
        every = count(item, "tokens_per_chunk") or 0
        documents.append(ChunkDocument(item["text"], spans, every))
    return documents


def options_of(body: dict[str, Any]) -> LateChunkOptions:
    # As attnserve.v1's EmbedChunks: an over-long document is refused unless truncating is asked.
    return LateChunkOptions(
        truncation=truncation(body, default=False), normalize=optional_flag(body, "normalize")
    )


def answer(result: LateChunkResult, encoding: str) -> list[dict[str, Any]]:
    data = []
    for index, document in enumerate(result.documents):
        vectors = iter(document.vectors)
        chunks = [
            {
                "index": number,
                "start": chunk.start,
                "end": chunk.end,
                "token_count": int(chunk.rows.size),
                "truncated": chunk.cut,
                "outside": chunk.outside,
                "embedding": None if chunk.outside else encode(next(vectors), encoding),
            }
            for number, chunk in enumerate(document.chunks)
        ]
        data.append(
            {
                "object": "document",
                "index": index,
                "token_count": document.token_count,
                "truncated": document.truncated,
                "chunks": chunks,
            }
        )
    return data


class LateChunkRoutes:
    docs = (
        RouteDoc("post", "/v1/late_chunking", "late chunking: a vector per chunk, in context",
                 LateChunkingBody),
    )  # fmt: skip

    def __init__(self, models: Registry) -> None:
        self.models = models

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        app.router.add_post("/v1/late_chunking", envelope("late_chunking", self.chunk, PROTOCOL))

    async def chunk(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        documents = documents_of(body)
        options = options_of(body)
        encoding = encoding_format(body)
        result = await model.task(LateChunkTask).chunk(documents, options, None)
        tokens = sum(document.token_count for document in result.documents)
        return web.json_response(
            {
                "object": "list",
                "model": model.name,
                "data": answer(result, encoding),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
