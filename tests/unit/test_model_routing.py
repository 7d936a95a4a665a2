"""attnserve.v1 routes by name too: `model` on Embed, EmbedStream, Tokenize and Info picks the
served model ("" the default), an unknown name is NOT_FOUND naming those served, and every call
and stage is counted under the model it reached (the `model` label, bounded to served names).

Fake engines under the real tokenizer, batcher, pipeline, embed task and adapters (as in
test_models.py): each engine records the batches it ran, so a request that reached the wrong
model shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from attnserve.service.server.calls import Front
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tracing import Tracer
from attnserve.service.server.v1.embed import EmbedCell
from attnserve.service.server.v1.info import InfoCell
from attnserve.service.server.v1.tokenize import TokenizeCell
from attnserve.v1 import embedder_pb2 as pb
from tests.unit.fakes import AbortedError, FakeContext, FakeEngine, PairScore, fake_model


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def build(tokenizer_file: Path) -> tuple[Registry, dict[str, FakeEngine], Metrics]:
    metrics = Metrics()
    engines = {name: FakeEngine() for name in ("alpha", "beta", "gamma")}
    models = Registry(
        [
            fake_model("alpha", tokenizer_file, engines["alpha"], metrics=metrics),
            fake_model("beta", tokenizer_file, engines["beta"], metrics=metrics),
            fake_model("gamma", tokenizer_file, engines["gamma"], PairScore, metrics=metrics),
        ]
    )
    return models, engines, metrics


async def stream_of(*requests: pb.EmbedRequest) -> AsyncIterator[bytes]:
    for request in requests:
        yield request.SerializeToString()


def test_attnserve_v1_requests_reach_the_model_they_name(tokenizer_file: Path) -> None:
    models, engines, metrics = build(tokenizer_file)
    front, settings = Front(metrics, Tracer(None)), Settings()
    servicer = EmbedCell(models, front, settings)
    tokenizer = TokenizeCell(models, front, settings)
    info = InfoCell(models, front, settings)

    async def embed(model: str) -> Any:
        request = pb.EmbedRequest(texts=["bank by the river"], model=model)
        try:
            return await servicer.Embed(request.SerializeToString(), FakeContext())
        except AbortedError as refused:
            return refused

    async def scenario() -> dict[str, Any]:
        for model in models:
            model.batcher.start()
        seen: dict[str, Any] = {}
        try:
            for name in ("", "alpha", "beta", "gamma", "delta"):
                seen[name] = await embed(name)
            tokenize = pb.TokenizeRequest(texts=["bank"], model="beta").SerializeToString()
            seen["tokenize"] = await tokenizer.Tokenize(tokenize, FakeContext())
            for name in ("", "beta"):
                asked = pb.InfoRequest(model=name).SerializeToString()
                seen[f"info {name}"] = await info.Info(asked, FakeContext())
            responses: asyncio.Queue[pb.EmbedResponse | None] = asyncio.Queue()
            await servicer.read_stream(
                stream_of(
                    pb.EmbedRequest(texts=["money"], model="beta", request_id="b"),
                    pb.EmbedRequest(texts=["money"], model="delta", request_id="d"),
                    pb.EmbedRequest(texts=["money"], request_id="a"),
                ),
                FakeContext(),
                responses,
            )
            answers = []
            while (answer := await responses.get()) is not None:
                answers.append(answer)
            seen["stream"] = {answer.request_id: answer for answer in answers}
        finally:
            for model in models:
                await model.batcher.stop()
        return seen

    seen = asyncio.run(scenario())
    assert seen[""].model == seen["alpha"].model == "alpha"  # "" is the default, the first
    assert seen["beta"].model == "beta"
    assert np.array_equal(seen["beta"].pooled.data, seen["alpha"].pooled.data)  # same fake maths
    assert seen["gamma"].code.name == "INVALID_ARGUMENT"
    assert "does not offer embed (it offers: score)" in seen["gamma"].message
    assert seen["delta"].code.name == "NOT_FOUND"
    assert "'delta' not found: this server serves 'alpha', 'beta', 'gamma'" in seen["delta"].message
    assert [len(engines[name].batches) for name in ("alpha", "beta", "gamma")] == [3, 2, 0]
    assert len(seen["tokenize"].texts) == 1
    assert seen["info "].model == "alpha"
    assert seen["info beta"].model == "beta"
    assert list(seen["info beta"].models) == ["alpha", "beta", "gamma"]
    stream = seen["stream"]
    assert stream["b"].model == "beta"
    assert stream["a"].model == "alpha"
    assert stream["d"].error.code == 5
    assert "'delta' not found" in stream["d"].error.message

    # Calls are counted under the model they reached; a refused name under "", never its own.
    registry = metrics.registry
    calls = "attnserve_requests_total"
    # ... and under the task they asked for (a model that does not offer it refuses, counted
    # under it); "" when refused before any model was chosen.
    assert sample(registry, calls, protocol="attnserve.v1", method="Embed", code="OK",
                  model="alpha", task="embed") == 2  # fmt: skip
    assert sample(registry, calls, protocol="attnserve.v1", method="Embed", code="OK",
                  model="beta", task="embed") == 1  # fmt: skip
    assert sample(registry, calls, protocol="attnserve.v1", method="Embed",
                  code="INVALID_ARGUMENT", model="gamma", task="embed") == 1  # fmt: skip
    assert sample(registry, calls, protocol="attnserve.v1", method="Embed", code="NOT_FOUND",
                  model="", task="") == 1  # fmt: skip
    assert sample(registry, calls, protocol="attnserve.v1", method="Tokenize", code="OK",
                  model="beta", task="tokenize") == 1  # fmt: skip
    assert sample(registry, calls, protocol="attnserve.v1", method="Info", code="OK",
                  model="beta", task="") == 1  # fmt: skip
    labels = {s.labels.get("model") for m in registry.collect() for s in m.samples}
    assert "delta" not in labels
    # Stage metrics per model: beta ran its own batches (two Embeds' texts, the stream's one).
    assert sample(registry, "attnserve_batch_size_texts_count", model="beta") == 2
    assert sample(registry, "attnserve_batch_size_texts_count", model="alpha") == 3
    assert sample(registry, "attnserve_input_tokens_total", model="gamma") == 0
    assert sample(registry, "attnserve_input_tokens_total", model="beta") > 0


def test_the_registry_says_which_models_offer_a_task(tokenizer_file: Path) -> None:
    models, _, _ = build(tokenizer_file)
    assert [model.name for model in models.offering(EmbedTask)] == ["alpha", "beta"]
    assert [model.name for model in models.offering(PairScore)] == ["gamma"]
    assert models.find("gamma").task_names == ["score"]
    assert models.route("").name == models.route(None).name == "alpha"  # none named: default
    assert not models.ready  # none warmed up yet
    for model in models:
        model.ready = True
    assert models.ready
    with pytest.raises(Exception, match="not found"):
        models.route("delta")
