"""EmbedStream's reader: a bounded number of requests in progress, all answered, in any order.

The Embed cell runs over a served model whose embed task finishes only when the test lets it, so
the bound is observed directly (no server, no timing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from attnserve.service.server.calls import Front
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.options import EmbedOptions
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedResult, EmbedTask, TextEmbedding
from attnserve.service.server.timings import Timings
from attnserve.service.server.tracing import Tracer
from attnserve.service.server.v1.embed import EmbedCell
from attnserve.v1 import embedder_pb2 as pb
from tests.unit.fakes import FakeEngine, fake_model


class GatedEmbed(EmbedTask):
    """Each embed call waits for the gate; records how many were in progress at once."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, maps_available=False)
        self.gate = asyncio.Event()
        self.in_progress = 0
        self.most = 0

    async def embed(
        self, texts: list[str], options: EmbedOptions, deadline: float | None
    ) -> EmbedResult:
        self.in_progress += 1
        self.most = max(self.most, self.in_progress)
        await self.gate.wait()
        self.in_progress -= 1
        vector = np.full((1, 3), float(len(texts[0])), dtype=np.float32)
        embedded = TextEmbedding(None, None, 1, False)
        return EmbedResult(vector, [embedded], Timings(0.0, 0.0, 0.0), (), ())


class NoDeadline:
    def time_remaining(self) -> None:
        return None


async def requests(count: int) -> AsyncIterator[bytes]:
    """What gRPC hands the stream's reader: each request as the bytes it arrived as."""
    for index in range(count):
        request = pb.EmbedRequest(texts=["x" * (index + 1)], request_id=f"r{index}")
        yield request.SerializeToString()


def test_a_long_stream_keeps_at_most_the_bound_in_progress_and_answers_all(
    tokenizer_file: Path,
) -> None:
    async def scenario() -> tuple[int, list[pb.EmbedResponse]]:
        model = fake_model("fake", tokenizer_file, FakeEngine(), GatedEmbed)
        gated = model.task(GatedEmbed)
        service = EmbedCell(
            Registry([model]), Front(Metrics(), Tracer(None)), Settings(max_stream_pending=3)
        )
        responses: asyncio.Queue[pb.EmbedResponse | None] = asyncio.Queue()
        reader = asyncio.create_task(service.read_stream(requests(50), NoDeadline(), responses))
        for _ in range(50):  # let the reader take all it may
            await asyncio.sleep(0)
        held = gated.in_progress
        gated.gate.set()
        await asyncio.wait_for(reader, timeout=10)
        answered = []
        while (response := responses.get_nowait()) is not None:
            answered.append(response)
        assert held == 3
        return gated.most, answered

    most, answered = asyncio.run(scenario())
    assert most == 3
    assert sorted(r.request_id for r in answered) == sorted(f"r{i}" for i in range(50))
    for response in answered:
        index = int(response.request_id[1:])
        values = np.frombuffer(response.pooled.data, dtype="<f4")
        assert values.tolist() == [index + 1.0] * 3  # each answer is its own request's
