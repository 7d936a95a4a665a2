"""OpenAI-compatible embeddings on the HTTP app: a thin route set over the embed task.

    POST /v1/embeddings   {"input": str | [str], "model": str (optional: the default model,
                           as TEI and vLLM), "encoding_format": "float" |
                           "base64", "dimensions": int}   (and, beyond OpenAI's API,
                           "truncate" and TEI's "truncation_direction": `fields.truncation`;
                           "chunking": true to embed them as pooled windows, "chunk_overlap":
                           int; each item's "attnserve" extension then says its "windows")
    POST /embeddings      the same, for a client whose base URL lacks /v1 (TEI, Infinity)
    GET  /v1/models       the models served

The `openai` SDKs, LangChain, LlamaIndex and most RAG tooling speak this. Requests enter the same
embed task (of the model named, found in the registry), batcher, limits, metrics (protocol
"openai") and logs as attnserve.v1. Like OpenAI's API, an over-long input is an error unless the
request asks for truncation (or the server's `--auto-truncate` cuts what asks nothing). Token-id
inputs (LangChain's default sends tiktoken ids) are refused with the fix: ids from another
tokenizer read in this model's vocabulary are silently wrong vectors. Each data item carries,
beside OpenAI's fields, `"attnserve": {"tokens": n, "truncated": bool}` (the tokens the model saw
and whether the text was cut); the SDKs keep unknown fields, and `usage` counts the tokens
actually used.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.fields import (
    Envelope,
    RouteDoc,
    count,
    encode,
    encoding_format,
    json_object,
    optional_flag,
    token_ids_refusal,
    truncation,
)
from attnserve.service.server.http.openai_bodies import EmbeddingsBody
from attnserve.service.server.options import EmbedOptions
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.tasks.embed import EmbedTask

PROTOCOL = "openai"


def texts_of(body: dict[str, Any], model: ServedModel) -> list[str]:
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and all(isinstance(item, str) for item in given):
        return given
    if isinstance(given, list) and given and all(isinstance(i, int | list) for i in given):
        raise invalid(token_ids_refusal(model))
    raise invalid("'input' must be a string or a list of strings")


def options_of(body: dict[str, Any], model: ServedModel) -> EmbedOptions:
    return EmbedOptions(
        truncation=truncation(body, default=model.limits.auto_truncate),
        dimensions=count(body, "dimensions"),
        chunking=optional_flag(body, "chunking"),
        chunk_overlap=count(body, "chunk_overlap", non_negative=True),
    )


class OpenAIRoutes:
    docs = (
        RouteDoc("post", "/v1/embeddings", "OpenAI's embeddings", EmbeddingsBody),
        RouteDoc("post", "/embeddings", "OpenAI's embeddings, for a base URL without /v1",
                 EmbeddingsBody),
        RouteDoc("get", "/v1/models", "the served models (OpenAI's list)"),
    )  # fmt: skip

    def __init__(self, models: Registry) -> None:
        self.models = models
        self.created = int(time.time())

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        embeddings = envelope("embeddings", self.embeddings, PROTOCOL)
        app.router.add_post("/v1/embeddings", embeddings)
        app.router.add_post("/embeddings", embeddings)
        app.router.add_get("/v1/models", envelope("models", self.list_models, PROTOCOL))

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))  # its name or an alias; none: the default
        texts = texts_of(body, model)
        options = options_of(body, model)
        encoding = encoding_format(body)
        result = await model.task(EmbedTask).embed(texts, options, None)
        assert result.pooled is not None
        data: list[dict[str, Any]] = []
        for index, (vector, text) in enumerate(zip(result.pooled, result.texts, strict=True)):
            # attnserve's extension: what this text used (OpenAI's API has no such field).
            extension: dict[str, Any] = {"tokens": text.token_count, "truncated": text.truncated}
            if result.chunked:
                extension["windows"] = text.windows
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": encode(vector, encoding),
                    "attnserve": extension,
                }
            )
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
