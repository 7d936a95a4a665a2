"""tei.v1's stream kit (`tei/streams.py` `in_order`): TEI's contract, observed directly (no
server, no timing): answers in the requests' order however they finish, at most `max_pending`
not yet sent, the first failure raised with the requests after it cancelled, a broken request
stream raised after the answers before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from attnserve.service.server.errors import ServiceError, invalid
from attnserve.service.server.tei.streams import in_order


async def requests_of(*payloads: bytes, broken: bool = False) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield payload
    if broken:
        raise ConnectionError("the client's stream broke")


class Answers:
    """Answers each request with its text, after the gate of that text opens; counts how many
    run at once and which were cancelled."""

    def __init__(self) -> None:
        self.gates: dict[bytes, asyncio.Event] = {}
        self.running = 0
        self.most = 0
        self.cancelled: list[bytes] = []

    def gate(self, data: bytes) -> asyncio.Event:
        return self.gates.setdefault(data, asyncio.Event())

    async def __call__(self, data: bytes) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate(data).wait()
        except asyncio.CancelledError:
            self.cancelled.append(data)
            raise
        finally:
            self.running -= 1
        if data == b"bad":
            raise invalid("a bad request")
        return data.decode()


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [answer async for answer in stream]


async def drain(stream: AsyncIterator[str], into: list[str]) -> None:
    """The stream's answers into `into`, until it ends or raises."""
    async for answer in stream:
        into.append(answer)


def test_answers_come_in_request_order_whatever_finishes_first() -> None:
    async def scenario() -> list[str]:
        answers = Answers()
        stream = collect(in_order(requests_of(b"a", b"b", b"c"), answers, max_pending=8))
        task = asyncio.create_task(stream)
        for name in (b"c", b"b", b"a"):  # the last request finishes first
            await asyncio.sleep(0)
            answers.gate(name).set()
        return await task

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_at_most_max_pending_run_before_their_answers_are_sent() -> None:
    async def scenario() -> int:
        answers = Answers()
        payloads = [str(i).encode() for i in range(10)]
        task = asyncio.create_task(collect(in_order(requests_of(*payloads), answers, 3)))
        for _ in range(20):
            await asyncio.sleep(0)
        assert answers.running == 3  # the stream stopped reading
        for payload in payloads:
            answers.gate(payload).set()
        assert await task == [str(i) for i in range(10)]
        return answers.most

    assert asyncio.run(scenario()) == 3


def test_the_first_failure_is_raised_and_the_later_requests_cancelled() -> None:
    async def scenario() -> Answers:
        answers = Answers()
        stream = in_order(requests_of(b"ok", b"bad", b"late"), answers, max_pending=8)
        got: list[str] = []
        answers.gate(b"ok").set()
        answers.gate(b"bad").set()
        with pytest.raises(ServiceError, match="a bad request"):
            await drain(stream, got)
        await asyncio.sleep(0)
        assert got == ["ok"]
        return answers

    answers = asyncio.run(scenario())
    assert answers.cancelled == [b"late"]


def test_a_broken_request_stream_is_raised_after_the_answers_before_it() -> None:
    async def scenario() -> list[str]:
        answers = Answers()
        answers.gate(b"a").set()
        got: list[str] = []
        with pytest.raises(ConnectionError):
            await drain(in_order(requests_of(b"a", broken=True), answers, 4), got)
        return got

    assert asyncio.run(scenario()) == ["a"]
