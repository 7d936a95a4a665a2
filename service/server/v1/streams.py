"""A bidirectional stream of unary calls (EmbedStream, RerankStream): requests run concurrently,
each answer (or its failure, inline) is sent as it completes, and the stream goes on.

One implementation for every streaming method: a bounded number of a stream's requests in
progress (past it the stream stops reading, and HTTP/2 flow control pushes back on the client),
a bounded queue of answers (a client that never reads its responses stops the stream's work
instead of piling answers up here), and a failure answered inside the stream with the status
number and message its unary call would have given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from google.protobuf.message import Message

from attnserve.service.server.calls import answer_for, parse
from attnserve.service.server.errors import Code, ServiceError

log = logging.getLogger(__name__)
R = TypeVar("R")


M = TypeVar("M", bound=Message)


async def answer_stream(
    read: Callable[[asyncio.Queue[R | None]], Coroutine[Any, Any, None]], max_pending: int
) -> AsyncIterator[R]:
    """Yield the answers `read` puts in the queue (None: the stream ended) as they come."""
    responses: asyncio.Queue[R | None] = asyncio.Queue(max_pending)
    reader = asyncio.create_task(read(responses))
    try:
        while (response := await responses.get()) is not None:
            yield response
        await reader  # surfaces a broken request stream
    finally:
        reader.cancel()


async def read_requests(
    requests: AsyncIterator[bytes],
    answer: Callable[[bytes], Awaitable[R]],
    responses: asyncio.Queue[R | None],
    max_pending: int,
) -> None:
    """Each request answered in its own task, at most `max_pending` at once; None when done.
    Finished tasks leave the set as they finish, so a long stream holds only what is in flight."""

    async def one(data: bytes) -> None:
        await responses.put(await answer(data))

    slots = asyncio.Semaphore(max_pending)
    pending: set[asyncio.Task[None]] = set()

    def release(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        slots.release()

    try:
        async for request in requests:
            await slots.acquire()
            task = asyncio.create_task(one(request))
            pending.add(task)
            task.add_done_callback(release)
        await asyncio.gather(*pending)
    finally:
        for task in list(pending):
            task.cancel()
        await responses.put(None)


async def answer_or_fail(
    data: bytes,
    message_type: type[M],
    run: Callable[[M], Awaitable[R]],
    failed: Callable[[str, Code, str], R],
    call_id: str,
) -> R:
    """One streamed request: parsed and run, or its failure as `failed(request_id, code,
    message)` (a server fault as INTERNAL naming the request id, logged)."""
    request_id = ""
    try:
        request = parse(message_type, data)
        request_id = getattr(request, "request_id", "")
        return await run(request)
    except Exception as error:
        if not isinstance(error, ServiceError):
            log.exception("streamed %s %r failed", message_type.DESCRIPTOR.name, request_id)
        answer = answer_for(error, request_id or call_id)
        return failed(request_id, answer.code, answer.message)
