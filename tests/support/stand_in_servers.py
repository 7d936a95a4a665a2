"""Bare grpc.aio servers of attnserve.v1 whose answers the load tests know in advance: one that
serves a request at a time (a known capacity), one that takes as long as each text says."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from grpc import aio

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc


class SlowEmbedder(embedder_pb2_grpc.EmbedderServicer):
    """Answers one request at a time, 50 ms each: a capacity of 20 requests/s."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    async def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:  # noqa: N802
        async with self.lock:
            await asyncio.sleep(0.05)
        pooled = wire.encode(np.zeros((len(request.texts), 4), dtype=np.float32))
        return pb.EmbedResponse(pooled=pooled, results=[pb.TextResult(token_count=3)])


@contextlib.contextmanager
def serving(servicer: embedder_pb2_grpc.EmbedderServicer) -> Iterator[str]:
    """A bare grpc.aio server for SERVICER on its own event loop thread; yields its target."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[aio.Server, int]:
        server = aio.server()
        embedder_pb2_grpc.add_EmbedderServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


class KnownLatencyEmbedder(embedder_pb2_grpc.EmbedderServicer):
    """Takes as long as its text says (in seconds), concurrently: latencies known in advance."""

    async def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:  # noqa: N802
        await asyncio.sleep(float(request.texts[0]))
        pooled = wire.encode(np.zeros((len(request.texts), 4), dtype=np.float32))
        return pb.EmbedResponse(pooled=pooled, results=[pb.TextResult(token_count=3)])
