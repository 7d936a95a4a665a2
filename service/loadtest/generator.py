"""The load generator: closed- and open-loop load against any attnserve endpoint.

Closed loop: N callers back to back. Open loop: Poisson arrivals at a fixed rate, each request
timed from its *scheduled* send time, so a server that falls behind shows the queueing delay
it causes instead of hiding it (no coordinated omission). Every loop is bounded by a request
count and a duration, after a warm-up that is not counted; it stops by itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Literal

from grpc import aio

from attnserve.service.client.channel import Connection
from attnserve.service.corpus import load_texts
from attnserve.service.loadtest.report import Outcome, Summary, Tally, summarize
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc

PLOT_SAMPLE = 100_000  # outcomes a load process sends back for the plot


@dataclass(frozen=True)
class LoadConfig:
    connection: Connection
    mode: Literal["closed", "open"] = "closed"
    concurrency: int = 8
    rate: float = 50.0
    requests: int = 0  # a bound on the requests sent; 0 = none (the duration decides)
    duration_s: float = 30.0
    warmup_s: float = 2.0
    texts_per_request: int = 1
    token_embeddings: bool = False
    attention: bool = False
    timeout_s: float = 30.0
    corpus: str = "mixed"  # a named mix (service/corpus.py) or a file, one text per line
    processes: int = 1  # load processes; callers, rate and requests are shared out
    seed: int = 1  # which texts each request takes (each process gets its own)

    def describe(self) -> dict[str, object]:
        """The configuration for reports, without secrets."""
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        return {**fields, "connection": self.connection.describe()}


@dataclass
class Run:
    config: LoadConfig
    outcomes: list[Outcome] = field(default_factory=list)
    sent: int = 0
    elapsed_s: float = 0.0


class LoadGenerator:
    def __init__(self, config: LoadConfig, progress: bool) -> None:
        self.config = config
        self.progress = progress
        self.texts = load_texts(config.corpus)
        self.rng = random.Random(config.seed)
        self.metadata = config.connection.metadata

    def request(self) -> pb.EmbedRequest:
        texts = self.rng.choices(self.texts, k=self.config.texts_per_request)
        options = pb.EmbedOptions(
            token_embeddings=self.config.token_embeddings,
            attention=pb.AttentionOptions(enabled=self.config.attention, layers=[0], heads=[0]),
        )
        return pb.EmbedRequest(texts=texts, options=options)

    async def call(self, stub: embedder_pb2_grpc.EmbedderStub, scheduled: float) -> Outcome:
        request = self.request()
        try:
            response = await stub.Embed(
                request, timeout=self.config.timeout_s, metadata=self.metadata
            )
        except aio.AioRpcError as error:
            return Outcome(0.0, time.perf_counter() - scheduled, error.code().name, 0)
        timings = response.timings
        return Outcome(
            0.0,
            time.perf_counter() - scheduled,
            "OK",
            len(request.texts),
            sum(r.token_count for r in response.results),
            timings.queue_ms,
            timings.tokenize_ms,
            timings.inference_ms,
        )

    async def run(self) -> Run:
        async with self.config.connection.aio_channel() as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
            await channel.channel_ready()
            if self.config.warmup_s > 0:  # same load shape, results thrown away
                await self.phase(stub, self.config.warmup_s, 10**9, counted=False)
            limit = self.config.requests or sys.maxsize
            return await self.phase(stub, self.config.duration_s, limit, True)

    async def phase(
        self, stub: embedder_pb2_grpc.EmbedderStub, duration: float, limit: int, counted: bool
    ) -> Run:
        run = Run(self.config)
        started = time.perf_counter()
        ticker = asyncio.create_task(self.show_progress(run, started, duration, counted))
        try:
            if self.config.mode == "closed":
                await self.closed_loop(stub, run, started, duration, limit)
            else:
                await self.open_loop(stub, run, started, duration, limit)
        finally:
            ticker.cancel()
        run.elapsed_s = time.perf_counter() - started
        if counted and self.progress:
            print(file=sys.stderr)
        return run

    async def closed_loop(
        self, stub: embedder_pb2_grpc.EmbedderStub, run: Run, started: float, duration: float,
        limit: int,
    ) -> None:  # fmt: skip
        async def caller() -> None:
            while run.sent < limit and time.perf_counter() - started < duration:
                run.sent += 1
                sent_at = time.perf_counter()
                outcome = await self.call(stub, sent_at)
                outcome.scheduled_at = sent_at - started
                run.outcomes.append(outcome)

        await asyncio.gather(*(caller() for _ in range(self.config.concurrency)))

    async def open_loop(
        self, stub: embedder_pb2_grpc.EmbedderStub, run: Run, started: float, duration: float,
        limit: int,
    ) -> None:  # fmt: skip
        in_flight: set[asyncio.Task[None]] = set()
        arrivals = random.Random(2)
        next_at = started

        async def fire(scheduled: float) -> None:
            outcome = await self.call(stub, scheduled)
            outcome.scheduled_at = scheduled - started
            run.outcomes.append(outcome)

        while run.sent < limit:
            next_at += arrivals.expovariate(self.config.rate)
            if next_at - started >= duration:
                break
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            run.sent += 1
            task = asyncio.create_task(fire(next_at))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # every call has its own deadline, so this ends
            await asyncio.gather(*in_flight)

    async def show_progress(self, run: Run, started: float, duration: float, counted: bool) -> None:
        if not self.progress:
            return
        label = "load" if counted else "warm-up"
        while True:
            elapsed = time.perf_counter() - started
            done = min(elapsed / duration, 1.0) if duration > 0 else 1.0
            errors = sum(1 for o in run.outcomes if o.code != "OK")
            bar = "#" * int(done * 30)
            print(
                f"\r{label} [{bar:<30}] {elapsed:5.1f}s sent {run.sent} done "
                f"{len(run.outcomes)} errors {errors}",
                end="",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(0.5)


def run_load(config: LoadConfig, progress: bool = False) -> tuple[Run, Summary]:
    """Run the load; with several processes, their tallies are merged (see report.py)."""
    if config.processes == 1:
        run = asyncio.run(LoadGenerator(config, progress).run())
        return run, summarize(run.outcomes, run.sent, run.elapsed_s)
    if progress:
        print(f"load from {config.processes} processes ...", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(
        max_workers=config.processes, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        results = list(pool.map(run_share, shares(config)))
    tally = Tally()
    outcomes: list[Outcome] = []
    for share_tally, sample in results:
        tally.merge(share_tally)
        outcomes += sample
    return Run(config, outcomes, tally.sent, tally.elapsed_s), tally.summary()


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` shares as even as can be (the first ones take the remainder)."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def shares(config: LoadConfig) -> list[LoadConfig]:
    """One configuration per process: callers (closed loop) or rate (open loop) and the
    request bound shared out, each with its own text sequence."""
    count = config.processes
    callers = split(config.concurrency, count)
    requests = split(config.requests, count)
    return [
        replace(
            config,
            processes=1,
            concurrency=max(1, callers[index]),
            rate=config.rate / count,
            requests=requests[index],
            seed=config.seed + 7919 * (index + 1),
        )
        for index in range(count)
        if (requests[index] > 0 or config.requests == 0)
        and (config.mode == "open" or callers[index] > 0)
    ]


def run_share(config: LoadConfig) -> tuple[Tally, list[Outcome]]:
    """In a load process: run its share; return its tally and (for the plot) its outcomes,
    up to `PLOT_SAMPLE`."""
    run = asyncio.run(LoadGenerator(config, progress=False).run())
    return Tally.of(run.outcomes, run.sent, run.elapsed_s), run.outcomes[:PLOT_SAMPLE]
