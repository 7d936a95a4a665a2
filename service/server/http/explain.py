"""Explanations over HTTP, on the `--http-port` app: attnserve.v1's `Explain` as JSON.

    POST /v1/explain  {"model", "texts": [one or two texts] | "query" + "documents",
                      "truncate", "max_tokens", "dimensions", "prompt_name", "rollout"}
                      -> {"model", "pooling", "prompt_name", "texts": [{"tokens", "relevance",
                      "truncated", "prompt_tokens"}], "similarity": {"cells", "first_shares",
                      "second_shares", "cosine", "cells_sum", "dimensions"}, "documents":
                      [{"index", "score", "tokens", "relevance", "token_count", "truncated"}]}

A thin route set on the HTTP app (its envelope: request id, auth, drain, failures as JSON
errors with HTTP statuses), counted under protocol "http". What the fields ask for is the
explain task's decision, as for attnserve.v1; an over-long text is cut unless `"truncate":
false`, as Explain cuts by default.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.explain_bodies import ExplainBody
from attnserve.service.server.http.fields import (
    Envelope,
    RouteDoc,
    count,
    flag,
    json_object,
    strings,
    truncation,
)
from attnserve.service.server.options import ExplainOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.tasks.explain import (
    ExplainedText,
    ExplainTask,
    RelevanceExplanation,
    SimilarityExplanation,
)

PROTOCOL = "http"


def optional_strings(body: dict[str, Any], field: str) -> list[str]:
    return strings(body, field) if body.get(field) is not None else []


def optional_string(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid(f"'{field}' must be a string")
    return value


def options_of(body: dict[str, Any]) -> ExplainOptions:
    return ExplainOptions(
        truncation=truncation(body, default=True),
        max_tokens=count(body, "max_tokens", non_negative=True) or None,
        dimensions=count(body, "dimensions", non_negative=True) or None,
        prompt_name=optional_string(body, "prompt_name"),
        rollout=flag(body, "rollout", False),
    )


def text_entry(text: ExplainedText) -> dict[str, Any]:
    return {
        "tokens": [view.text for view in text.tokens],
        "relevance": None if text.relevance is None else text.relevance.tolist(),
        "truncated": text.truncated,
        "prompt_tokens": text.prompt_tokens,
    }


class ExplainRoutes:
    docs = (
        RouteDoc("post", "/v1/explain", "explanations of similarity and relevance", ExplainBody),
    )

    def __init__(self, models: Registry) -> None:
        self.models = models

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        app.router.add_post("/v1/explain", envelope("explain", self.explain, PROTOCOL))

    async def explain(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        texts = optional_strings(body, "texts")
        query = optional_string(body, "query") or ""
        documents = optional_strings(body, "documents")
        options = options_of(body)
        task = model.task(ExplainTask)
        explained = await task.explain(texts, query, documents, options, None)
        answer: dict[str, Any] = {"model": model.name}
        if isinstance(explained, SimilarityExplanation | RelevanceExplanation):
            answer["pooling"] = model.manifest.model.pooling.value
            answer["prompt_name"] = explained.prompt_name
        if isinstance(explained, SimilarityExplanation):
            terms = explained.terms
            answer["texts"] = [text_entry(explained.first), text_entry(explained.second)]
            answer["similarity"] = {
                "cells": terms.cells.tolist(),
                "first_shares": terms.first_shares.tolist(),
                "second_shares": terms.second_shares.tolist(),
                "cosine": explained.cosine,
                "cells_sum": terms.cosine,
                "dimensions": explained.dimensions,
            }
        elif isinstance(explained, RelevanceExplanation):
            answer["texts"] = [text_entry(text) for text in explained.texts]
        else:
            answer["documents"] = [
                {
                    "index": document.index,
                    "score": document.score,
                    "tokens": document.tokens,
                    "relevance": document.relevance.tolist(),
                    "token_count": document.token_count,
                    "truncated": document.truncated,
                }
                for document in explained.documents
            ]
        return web.json_response(answer)
