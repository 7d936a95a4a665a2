"""Classify over HTTP in the shapes Infinity's and vLLM's clients read: a thin route set over
the score task's classify.

    POST /classify      Infinity: {"input": str | [str], "model" (optional), "raw_scores"}
                        -> {"object": "classify", "id", "created", "model", "data": [[{"label",
                        "score"}] per input, best first], "usage": {"prompt_tokens",
                        "total_tokens"}}
    POST /v1/classify   vLLM and SGLang: {"input": str | [str], "model" (optional)}
                        -> {"object": "list", "id", "created", "model", "data": [{"object":
                        "classification", "index", "label", "probs": [one per label, in the
                        head's label order], "num_classes"}], "usage": {...}}

Both names exist because the two servers answer one path differently (Infinity's data is a list
of label lists, vLLM's a list of objects); `/classify` is Infinity's (it has no `/v1`), and
`/v1/classify` the path vLLM's and SGLang's OpenAI-style clients call. TEI's `/predict` is
`rerank.py`'s. Every input runs as one text through the head, as attnserve.v1's Classify: the
same batcher, limits, activation (softmax over labels, sigmoid where multi-label or one label)
and `raw_scores` as the logits; an over-long input is cut, as TEI's predict (`truncate`: false
refuses it). Counted under protocol "http".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.classify_bodies import ClassifyBody
from attnserve.service.server.http.fields import Envelope, RouteDoc, flag, json_object, truncation
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.tasks.score import ClassifyResult, ScoreTask

PROTOCOL = "http"


def inputs_of(body: dict[str, Any]) -> list[str]:
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and all(isinstance(item, str) for item in given):
        return given
    raise invalid("'input' must be a string or a list of strings")


def usage(result: ClassifyResult) -> dict[str, int]:
    return {"prompt_tokens": result.tokens, "total_tokens": result.tokens}


class ClassifyRoutes:
    docs = (
        RouteDoc("post", "/classify", "classify, Infinity's shape", ClassifyBody),
        RouteDoc("post", "/v1/classify", "classify, vLLM's and SGLang's shape", ClassifyBody),
    )

    def __init__(self, models: Registry) -> None:
        self.models = models

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        app.router.add_post("/classify", envelope("classify", self.infinity, PROTOCOL))
        app.router.add_post("/v1/classify", envelope("classify", self.vllm, PROTOCOL))

    async def classified(self, body: dict[str, Any]) -> tuple[str, ClassifyResult, tuple[str, ...]]:
        """(the model's name, its answer: every label, best first; the head's labels in order)."""
        model = self.models.route(body.get("model"))
        inputs = inputs_of(body)
        options = ScoreOptions(
            truncation=truncation(body, default=True), raw_scores=flag(body, "raw_scores", False)
        )
        task = model.task(ScoreTask, "classify")
        result = await task.classify(inputs, options, None)
        return model.name, result, task.head.labels

    async def infinity(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        name, result, _ = await self.classified(body)
        data = [
            [{"label": label.label, "score": label.score} for label in item.labels]
            for item in result.inputs
        ]
        return web.json_response(
            {
                "object": "classify",
                "id": f"infinity-{uuid.uuid4()}",
                "created": int(time.time()),
                "model": name,
                "data": data,
                "usage": usage(result),
            }
        )

    async def vllm(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        name, result, labels = await self.classified(body)
        data = []
        for index, item in enumerate(result.inputs):
            by_label = {label.label: label.score for label in item.labels}
            data.append(
                {
                    "object": "classification",
                    "index": index,
                    "label": item.labels[0].label,  # the best
                    "probs": [by_label[label] for label in labels],
                    "num_classes": len(labels),
                }
            )
        return web.json_response(
            {
                "object": "list",
                "id": f"classify-{uuid.uuid4().hex}",
                "created": int(time.time()),
                "model": name,
                "data": data,
                "usage": usage(result),
            }
        )
