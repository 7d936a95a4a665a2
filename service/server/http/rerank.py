"""Rerank and classify over HTTP, on the `--http-port` app: the shapes retrieval tooling calls.

    POST /v1/rerank   Cohere/Jina: {"model", "query", "documents": [str | {"text": str}],
                      "top_n", "return_documents"} -> {"id", "model", "results": [{"index",
                      "relevance_score", "document": {"text"}}], "usage": {"total_tokens"}}
                      (LangChain's, LlamaIndex's and Dify's Cohere/Jina rerankers call this)
    POST /rerank      text-embeddings-inference: {"query", "texts", "raw_scores", "return_text",
                      "truncate"} -> [{"index", "score", "text"}], best first
    POST /predict     text-embeddings-inference: {"inputs": str | [a, b] | [str | [a, b], ...],
                      "raw_scores", "truncate"} -> [{"label", "score"}] per input, best first

A thin route set on the HTTP app (its envelope: request id, auth, drain, failures as JSON
errors with HTTP statuses); the calls are counted under protocol "http". Every route enters the
served model's score task: the same batcher, limits and scores as attnserve.v1's Rerank and
Classify. As in text-embeddings-inference, an over-long pair is truncated unless the request
says `"truncate": false`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.fields import (
    Envelope,
    count,
    flag,
    json_object,
    strings,
    truncation,
)
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.tasks.score import ScoreTask

PROTOCOL = "http"


def query_of(body: dict[str, Any]) -> str:
    query = body.get("query")
    if not isinstance(query, str):
        raise invalid("'query' must be a string")
    return query


class RerankRoutes:
    def __init__(self, models: Registry) -> None:
        self.models = models

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        app.router.add_post("/v1/rerank", envelope("rerank", self.cohere_rerank, PROTOCOL))
        app.router.add_post("/rerank", envelope("rerank", self.tei_rerank, PROTOCOL))
        app.router.add_post("/predict", envelope("predict", self.tei_predict, PROTOCOL))

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

    async def tei_rerank(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        query = query_of(body)
        texts = strings(body, "texts")
        options = ScoreOptions(
            truncation=truncation(body, default=True), raw_scores=flag(body, "raw_scores", False)
        )
        return_text = flag(body, "return_text", False)
        result = await model.task(ScoreTask, "rerank").rerank(query, texts, options, None)
        answer = []
        for ranked in result.results:
            entry: dict[str, Any] = {"index": ranked.index, "score": ranked.score}
            if return_text:
                entry["text"] = texts[ranked.index]
            answer.append(entry)
        return web.json_response(answer)

    async def tei_predict(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        inputs, single = predict_inputs(body.get("inputs"))
        options = ScoreOptions(
            truncation=truncation(body, default=True), raw_scores=flag(body, "raw_scores", False)
        )
        result = await model.task(ScoreTask, "classify").classify(inputs, options, None)
        answers = [
            [{"label": label.label, "score": label.score} for label in item.labels]
            for item in result.inputs
        ]
        return web.json_response(answers[0] if single else answers)


def is_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)


def predict_inputs(given: object) -> tuple[list[str] | list[tuple[str, str]], bool]:
    """TEI's `inputs`: one text, one pair [a, b], or a list of texts or of pairs; and whether
    it was one input (answered with one list of labels, not a list of them)."""
    message = "'inputs' must be a string, a pair [a, b], or a list of strings or of pairs"
    if isinstance(given, str):
        return [given], True
    if is_pair(given):
        assert isinstance(given, list)
        return [(given[0], given[1])], True
    if isinstance(given, list) and given:
        if all(isinstance(item, str) for item in given):
            return list(given), False
        if all(is_pair(item) for item in given):
            return [(item[0], item[1]) for item in given], False
    raise invalid(message)
