"""The seam for many models and many tasks: a second model and a second task plug into the
registry, and the three protocol adapters, unchanged, route each request by the name it gives.

Three served models over fake engines (the real tokenizer, batcher, pipeline and embed task):
`alpha` embeds (the default), `beta` embeds and scores pairs, `gamma` only scores pairs. The
pair-scoring task is written here, in the test, over the pipeline every task shares: nothing in
`servicer.py`, `oip.py` or `openai_http.py` knows of it or of the models' names.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar, NoReturn, cast

import numpy as np
import pytest
from aiohttp import web

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.calls import Front
from attnserve.service.server.embed import EmbedTask
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.models import Registry
from attnserve.service.server.oip import InferenceService
from attnserve.service.server.openai_http import EmbeddingsApp
from attnserve.service.server.options import TokenizeOptions
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.servicer import EmbedderService
from attnserve.service.server.tracing import Tracer
from attnserve.v1 import embedder_pb2 as pb
from tests.unit.conftest import WORDS
from tests.unit.fakes import FakeEngine, fake_model

BANK = 4 + WORDS.index("bank")  # the tiny tokenizer's id of "bank"
MONEY = 4 + WORDS.index("money")


class PairScore:
    """A second task over the same pipeline: one score per (query, document) pair. The fake
    engine's pooled row is (first token id, length): the score here is the pair's length."""

    name: ClassVar[str] = "score"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        joined = [f"{query} {document}" for query, document in pairs]
        tokenized = await self.pipeline.admit(joined, TokenizeOptions())
        ran = await self.pipeline.run(tokenized, "fast", False, None)
        return [float(result.pooled[1]) for result in ran.results]


class AbortedError(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class FakeContext:
    """What the gRPC envelope asks of a servicer context."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> None:
        return None

    async def abort(self, code: Any, message: str) -> NoReturn:
        raise AbortedError(code, message)


class FakeRequest:
    """What the OpenAI adapter reads of an aiohttp request."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.headers: dict[str, str] = {}
        self.body = body

    async def json(self) -> dict[str, Any]:
        return self.body


def infer_request(model: str, texts: list[str]) -> bytes:
    tensor = oip.ModelInferRequest.InferInputTensor(
        name="text",
        datatype="BYTES",
        shape=[len(texts)],
        contents=oip.InferTensorContents(bytes_contents=[text.encode() for text in texts]),
    )
    return oip.ModelInferRequest(model_name=model, inputs=[tensor]).SerializeToString()


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
    infos = {name: pb.InfoResponse(model=name) for name in ("alpha", "beta", "gamma")}
    servicer = EmbedderService(models, infos, front, 4)
    inference = InferenceService(models, front)
    http = EmbeddingsApp(models, front, None)
    embeddings = http.call("embeddings", http.embeddings)

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
                cast(str, (await http.list_models(cast(web.Request, None))).text)
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
