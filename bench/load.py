"""A lean closed-loop gRPC load for the benchmarks: pre-encoded requests, undecoded responses.

The benchmarks measure the server, so the client in the same process (on the same cores) should
cost as little as possible: every request is serialised once up front, responses stay bytes, and
a few channels carry all callers. `attnserve loadtest` is the tool users run; this is its
stripped-down twin for paired measurements.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from grpc import aio

from attnserve.service.client.channel import Connection
from attnserve.v1 import embedder_pb2 as pb

EMBED = "/attnserve.v1.Embedder/Embed"


@dataclass(frozen=True)
class LoadResult:
    texts_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    codes: dict[str, int]  # errors by status code
    failed_p50_ms: float  # how long a failed call (say, a refusal) took to come back


def encode_requests(texts: Sequence[str], per_request: int, count: int = 4096) -> list[bytes]:
    """`count` serialised requests of `per_request` consecutive texts, cycling the corpus."""
    requests = []
    for index in range(count):
        start = (index * per_request) % len(texts)
        chunk = [texts[(start + i) % len(texts)] for i in range(per_request)]
        requests.append(pb.EmbedRequest(texts=chunk).SerializeToString())
    return requests


async def closed_loop(
    target: str,
    requests: Sequence[bytes],
    per_request: int,
    callers: int,
    seconds: float,
    channels: int = 4,
    method: str = EMBED,
) -> LoadResult:
    """`callers` callers back to back for `seconds`; each takes the next pre-encoded request
    (for `method`: attnserve.v1's Embed unless told otherwise)."""
    opened = [Connection(target).aio_channel() for _ in range(min(channels, callers))]
    calls = [channel.unary_unary(method) for channel in opened]
    latencies: list[float] = []
    failed: list[float] = []
    codes: Counter[str] = Counter()
    next_request = 0
    stop_at = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        nonlocal next_request
        call = calls[index % len(calls)]
        while time.perf_counter() < stop_at:
            request = requests[next_request % len(requests)]
            next_request += 1
            began = time.perf_counter()
            try:
                await call(request, timeout=120)
            except aio.AioRpcError as error:
                codes[error.code().name] += 1
                failed.append(time.perf_counter() - began)
                continue
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    elapsed = time.perf_counter() - started
    for channel in opened:
        await channel.close()
    return summarize(latencies, failed, codes, elapsed, per_request)


def summarize(
    latencies: Sequence[float],
    failed: Sequence[float],
    codes: Mapping[str, int],
    elapsed: float,
    per_request: int,
) -> LoadResult:
    """One load's figures from its successful and failed calls' seconds and failure codes."""
    ordered = sorted(latencies) or [0.0]
    return LoadResult(
        texts_per_s=len(latencies) * per_request / elapsed,
        requests_per_s=len(latencies) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        errors=sum(codes.values()),
        codes=dict(codes),
        failed_p50_ms=statistics.median(failed) * 1000 if failed else 0.0,
    )


def run_closed_loop(
    target: str,
    requests: Sequence[bytes],
    per_request: int,
    callers: int,
    seconds: float,
    method: str = EMBED,
) -> LoadResult:
    return asyncio.run(closed_loop(target, requests, per_request, callers, seconds, method=method))
