"""Rerank over HTTP in Cohere's and Jina's shapes, on the `--http-port` app.

    POST /v1/rerank   Cohere/Jina: {"model", "query", "documents": [str | {"text": str}],
                      "top_n", "return_documents"} -> {"id", "model", "results": [{"index",
                      "relevance_score", "document": {"text"}}], "usage": {"total_tokens"}}
                      (cohere's v1 `Client` and Dify's OpenAI-compatible reranker call this)
    POST /v2/rerank   Cohere v2: {"model", "query", "documents": [str], "top_n",
                      "max_tokens_per_doc"} -> {"id", "results": [{"index",
                      "relevance_score"}], "meta": {"api_version", "billed_units", "tokens"}}
                      (cohere's `ClientV2`, and LangChain's and LlamaIndex's `CohereRerank`)
(text-embeddings-inference's /rerank and /predict are `tei.py`'s, with TEI's error bodies.)

A thin route set on the HTTP app (its envelope: request id, auth, drain, failures as JSON
errors with HTTP statuses); the calls are counted under protocol "http". Every route enters the
served model's score task: the same batcher, limits and scores as attnserve.v1's Rerank. As in
text-embeddings-inference, an over-long pair is truncated unless the request says
`"truncate": false`. Cohere's `max_tokens_per_doc` caps each query-document pair's tokens
(cut longest first, as CrossEncoder), never above the model's own cap: Cohere's default, 4096, is
above every cross-encoder's, so it changes nothing unless a request asks for less.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.fields import (
    Envelope,
    RouteDoc,
    count,
    flag,
    json_object,
    strings,
    truncation,
)
from attnserve.service.server.http.rerank_bodies import RerankV1Body, RerankV2Body
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.tasks.score import ScoreTask

PROTOCOL = "http"


def query_of(body: dict[str, Any]) -> str:
    query = body.get("query")
    if not isinstance(query, str):
        raise invalid("'query' must be a string")
    return query


class RerankRoutes:
    docs = (
        RouteDoc("post", "/v1/rerank", "rerank, Cohere v1's and Jina's shape", RerankV1Body),
        RouteDoc("post", "/v2/rerank", "rerank, Cohere v2's shape", RerankV2Body),
    )

    def __init__(self, models: Registry) -> None:
        self.models = models

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        app.router.add_post("/v1/rerank", envelope("rerank", self.cohere_rerank, PROTOCOL))
        app.router.add_post("/v2/rerank", envelope("rerank", self.cohere_v2_rerank, PROTOCOL))

    async def cohere_rerank(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        query = query_of(body)
        documents = strings(body, "documents")
        options = ScoreOptions(
            truncation=truncation(body, default=True),
            top_n=count(body, "top_n"),
            return_documents=flag(body, "return_documents", False),
        )
        result = await model.task(ScoreTask, "rerank").rerank(query, documents, options, None)
        results = []
        for ranked in result.results:
            entry: dict[str, Any] = {"index": ranked.index, "relevance_score": ranked.score}
            if options.return_documents:
                entry["document"] = {"text": documents[ranked.index]}
            results.append(entry)
        return web.json_response(
            {
                "id": str(uuid.uuid4()),
                "model": model.name,
                "results": results,
                "usage": {"total_tokens": result.tokens},
            }
        )

    async def cohere_v2_rerank(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        query = query_of(body)
        documents = strings(body, "documents")
        options = ScoreOptions(
            truncation=truncation(body, default=True),
            max_tokens=pair_cap(model, count(body, "max_tokens_per_doc")),
            top_n=count(body, "top_n"),
        )
        result = await model.task(ScoreTask, "rerank").rerank(query, documents, options, None)
        results = [
            {"index": ranked.index, "relevance_score": ranked.score} for ranked in result.results
        ]
        meta = {
            "api_version": {"version": "2"},
            "billed_units": {"search_units": 1},
            "tokens": {"input_tokens": result.tokens, "output_tokens": 0},
        }
        return web.json_response({"id": str(uuid.uuid4()), "results": results, "meta": meta})


def pair_cap(model: ServedModel, max_tokens_per_doc: int | None) -> int | None:
    """Cohere's `max_tokens_per_doc` as the pair's token cap: None (the model's own) unless it
    asks for fewer tokens than that."""
    if max_tokens_per_doc is None:
        return None
    if max_tokens_per_doc < 1:
        raise invalid(f"'max_tokens_per_doc' must be at least 1, got {max_tokens_per_doc}")
    own = min(model.manifest.tokenizer.default_max_tokens, model.limits.max_tokens_per_text)
    return max_tokens_per_doc if max_tokens_per_doc < own else None
