"""The seam for many models and many tasks: a second model and a second task plug into the
registry, and the protocols' cells, unchanged, route each request by the name it gives.

Three served models over fake engines (the real tokenizer, batcher, pipeline and embed task):
`alpha` embeds (the default), `beta` embeds and scores pairs, `gamma` only scores pairs. The
pair-scoring task is written in the tests (tests/unit/fakes.py), over the pipeline every task
shares: nothing in `v1/`, `oip/` or `http/` knows of it or of the models' names.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from aiohttp import web

from attnserve.service.server.calls import Front
from attnserve.service.server.http.app import HttpApp
from attnserve.service.server.http.openai import OpenAIRoutes
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.oip.service import InferenceService
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tracing import Tracer
from attnserve.service.server.v1.embed import EmbedCell
from attnserve.v1 import embedder_pb2 as pb
from tests.unit.conftest import WORDS
from tests.unit.fakes import (
    AbortedError,
    FakeContext,
    FakeEngine,
    FakeRequest,
    PairScore,
    fake_model,
    infer_request,
)

BANK = 4 + WORDS.index("bank")  # the tiny tokenizer's id of "bank"
MONEY = 4 + WORDS.index("money")


def test_a_second_model_and_a_second_task_plug_in_without_touching_the_adapters(
    tokenizer_file: Path,
) -> None:
    engines = {name: FakeEngine() for name in ("alpha", "beta", "gamma")}
    models = Registry(
        [
            fake_model("alpha", tokenizer_file, engines["alpha"]),
            fake_model("beta", tokenizer_file, engines["beta"], EmbedTask, PairScore),
            fake_model("gamma", tokenizer_file, engines["gamma"], PairScore),
        ]
    )
    front = Front(Metrics(), Tracer(None))
    servicer = EmbedCell(models, front, Settings())
    inference = InferenceService(models, front)
    routes = OpenAIRoutes(models)
    http = HttpApp(front, None, [routes])
    embeddings = http.call("embeddings", routes.embeddings, "openai")

    async def openai(model: str) -> tuple[int, dict[str, Any]]:
        body = {"model": model, "input": ["money by the river"]}
        response = await embeddings(cast(web.Request, FakeRequest(body)))
        assert response.text is not None
        return response.status, json.loads(response.text)

    async def scenario() -> dict[str, Any]:
        for model in models:
            model.batcher.start()
        seen: dict[str, Any] = {}
        try:
            # attnserve.v1 names no model: the default answers.
            request = pb.EmbedRequest(texts=["bank by the river"]).SerializeToString()
            seen["v1"] = await servicer.Embed(request, FakeContext())
            data = infer_request("beta", ["bank river", "money"])
            seen["oip"] = await inference.ModelInfer(data, FakeContext())
            seen["openai"] = await openai("beta")
            seen["score"] = await models.find("beta").task(PairScore).score([("bank", "river")])
            for name in ("gamma", "delta"):
                with pytest.raises(AbortedError) as refused:
                    await inference.ModelInfer(infer_request(name, ["bank"]), FakeContext())
                seen[f"oip {name}"] = refused.value
                seen[f"openai {name}"] = await openai(name)
            seen["models"] = json.loads(
                cast(str, (await routes.list_models(cast(web.Request, None))).text)
            )
        finally:
            for model in models:
                await model.batcher.stop()
        return seen

    seen = asyncio.run(scenario())
    # Each request reached the engine of the model it named, and no other.
    assert seen["v1"].model == "alpha"
    assert np.frombuffer(seen["v1"].pooled.data, "<f4").tolist() == [BANK, 6.0]
    answer = seen["oip"]
    assert answer.model_name == "beta"
    vectors = np.frombuffer(answer.raw_output_contents[0], "<f4").reshape(2, 2)
    assert vectors.tolist() == [[BANK, 4.0], [MONEY, 3.0]]
    status, body = seen["openai"]
    assert (status, body["model"], body["data"][0]["embedding"]) == (200, "beta", [MONEY, 6.0])
    # The second task ran over beta's own batcher and engine.
    assert seen["score"] == [4.0]
    assert len(engines["alpha"].batches) == 1
    assert len(engines["beta"].batches) == 3
    assert engines["gamma"].batches == []
    # A model that does not offer the adapter's task, and a name not served: clear refusals.
    assert seen["oip gamma"].code.name == "INVALID_ARGUMENT"
    assert "does not offer embed (it offers: score)" in seen["oip gamma"].message
    assert seen["openai gamma"][0] == 400
    assert seen["oip delta"].code.name == "NOT_FOUND"
    assert "'alpha', 'beta', 'gamma'" in seen["oip delta"].message
    assert seen["openai delta"][0] == 404
    assert [entry["id"] for entry in seen["models"]["data"]] == ["alpha", "beta", "gamma"]


def test_the_registry_finds_models_by_name_or_alias_and_defaults_to_the_first(
    tokenizer_file: Path,
) -> None:
    first = fake_model("first", tokenizer_file, FakeEngine())
    first.aliases = ("org/first",)
    second = fake_model("second", tokenizer_file, FakeEngine(), PairScore)
    models = Registry([first, second])
    assert models.default is first
    assert models.find("org/first") is first
    assert models.find("second") is second
    assert models.serves("first")
    assert not models.serves(None)
    assert not models.serves("third")
    assert isinstance(second.task(PairScore), PairScore)
