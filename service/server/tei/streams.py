"""TEI's bidirectional streams (EmbedStream, PredictStream, TokenizeStream, ...): a stream of
unary calls answered in the requests' order, the first failure ending the stream.

TEI's router runs a stream's requests concurrently and keeps their order (a channel of answers
in request order); an `Err` in that stream ends the call with its status. So here: each request
runs in its own task, at most `max_pending` of them not yet sent (past that the stream
stops reading, and HTTP/2 flow control pushes back on the client), the answers are sent in
order, and a request's failure ends the call with the status its unary call would have had,
the requests after it left unanswered (their work cancelled). attnserve.v1's streams answer as
each request completes, with failures inline (`v1/streams.py`): a different contract, so a
different kit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from google.protobuf.message import Message

from attnserve.service.server.calls import Context, Front, GrpcCall, parse
from attnserve.service.server.tei.messages import PROTOCOL

M = TypeVar("M", bound=Message)
R = TypeVar("R")


async def in_order(
    requests: AsyncIterator[bytes],
    answer: Callable[[bytes], Coroutine[Any, Any, R]],
    max_pending: int,
) -> AsyncIterator[R]:
    """Each request answered in its own task, at most `max_pending` not yet sent; the answers
    yielded in the requests' order. A failed answer raises here, and the requests still
    running are cancelled."""
    queue: asyncio.Queue[asyncio.Task[R] | None] = asyncio.Queue()
    slots = asyncio.Semaphore(max_pending)
    broken: list[Exception] = []

    async def read() -> None:
        try:
            async for data in requests:
                await slots.acquire()
                queue.put_nowait(asyncio.create_task(answer(data)))
        except Exception as error:  # the request stream itself broke
            broken.append(error)
        queue.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        while (task := await queue.get()) is not None:
            answered = await task
            slots.release()
            yield answered
        if broken:
            raise broken[0]
    finally:
        reader.cancel()
        while not queue.empty():
            if (left := queue.get_nowait()) is not None:
                left.cancel()
                if left.done() and not left.cancelled():
                    left.exception()  # retrieved: a failure after the first is not logged


class Streams:
    """A cell's TEI streams: each inside the call's envelope, its requests parsed and run, the
    answers in order, the first failure the call's status."""

    def __init__(self, front: Front, max_pending: int) -> None:
        self.front = front
        self.max_pending = max_pending

    async def answer(
        self,
        method: str,
        context: Context,
        requests: AsyncIterator[bytes],
        message_type: type[M],
        run: Callable[[M], Awaitable[R]],
    ) -> AsyncIterator[R]:
        async with GrpcCall(self.front, PROTOCOL, method, context):

            async def answer(data: bytes) -> R:
                return await run(parse(message_type, data))

            async for response in in_order(requests, answer, self.max_pending):
                yield response
