"""The batcher's policy with a fake engine: grouping, budgets, expiry, waiting, delivery.

No model and no timing assertions: batches are formed by calling the policy directly, and the
engine is a fake that records what it was given and answers with values derived from its input,
so each caller can check that it got its own text's result.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from attnserve.service.server.batcher import Batcher, ItemResult, WorkItem
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import Truncation
from attnserve.service.server.tokenizer import EncodedText, TextTokenizer
from tests.unit.fakes import FakeEngine

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def texts_of(tokenizer: TextTokenizer, lengths: list[int]) -> list[EncodedText]:
    """Texts of these token lengths ([CLS] and [SEP] included); the first word tells them apart."""
    words = "a b c d e f g h w".split()
    texts = [" ".join([words[i % len(words)]] + ["the"] * (n - 3)) for i, n in enumerate(lengths)]
    return tokenizer.encode(texts, Truncation.END, 64)


def make_batcher(**overrides: Any) -> Batcher:
    settings: dict[str, Any] = {
        "pad_token_id": 0,
        "max_batch_tokens": 10_000,
        "max_batch_texts": 64,
        "max_wait_ms": 60_000.0,  # waits, where there are any, never end by themselves here
        "max_queue_texts": 1000,
        **overrides,
    }
    return Batcher(FakeEngine(), **settings)


def lengths_of(batch: list[WorkItem]) -> list[int]:
    return sorted(item.length for item in batch)


def test_batches_group_texts_of_similar_length(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> list[list[int]]:
        batcher = make_batcher(max_batch_texts=3)
        lengths = [4, 40, 5, 41, 6, 42]
        random.Random(3).shuffle(lengths)
        batcher.submit(texts_of(text_tokenizer, lengths), "fast", False, None)
        return [lengths_of(batcher.form_batch()) for _ in range(2)]

    assert sorted(run(scenario())) == [[4, 5, 6], [40, 41, 42]]


def test_the_oldest_text_is_always_in_the_next_batch(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> list[int]:
        batcher = make_batcher(max_batch_texts=2)
        batcher.submit(texts_of(text_tokenizer, [30]), "fast", False, None)
        batcher.submit(texts_of(text_tokenizer, [4, 5, 6]), "fast", False, None)
        return lengths_of(batcher.form_batch())

    assert 30 in run(scenario())


def test_padded_tokens_stay_within_the_budget(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> list[int]:
        batcher = make_batcher(max_batch_tokens=100)
        batcher.submit(texts_of(text_tokenizer, [30, 30, 30, 30]), "fast", False, None)
        return lengths_of(batcher.form_batch())

    assert run(scenario()) == [30, 30, 30]  # a fourth would pad to 120 tokens


def test_maps_and_fast_texts_never_share_a_batch(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> list[set[str]]:
        batcher = make_batcher()
        batcher.submit(texts_of(text_tokenizer, [5, 6]), "fast", False, None)
        batcher.submit(texts_of(text_tokenizer, [5, 6]), "maps", False, None)
        return [{item.purpose for item in batcher.form_batch()} for _ in range(2)]

    assert run(scenario()) == [{"fast"}, {"maps"}]


def test_expired_and_cancelled_texts_are_dropped_before_inference(
    text_tokenizer: TextTokenizer,
) -> None:
    async def scenario() -> tuple[list[int], BaseException | None, bool]:
        batcher = make_batcher()
        loop = asyncio.get_running_loop()
        expired = batcher.submit(texts_of(text_tokenizer, [7]), "fast", False, loop.time() - 1)
        left = batcher.submit(texts_of(text_tokenizer, [8]), "fast", False, None)
        batcher.submit(texts_of(text_tokenizer, [9]), "fast", False, None)
        left.cancel()  # its caller went away
        batch = lengths_of(batcher.form_batch())
        await asyncio.sleep(0)  # failures are handed to the loop like results
        return batch, expired.exception(), left.cancelled()

    batch, error, cancelled = run(scenario())
    assert batch == [9]
    assert isinstance(error, ServiceError)
    assert error.code is Code.DEADLINE_EXCEEDED
    assert cancelled


def test_a_full_queue_refuses_the_whole_request(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> int:
        batcher = make_batcher(max_queue_texts=3)
        batcher.submit(texts_of(text_tokenizer, [5, 5]), "fast", False, None)
        with pytest.raises(ServiceError) as caught:
            batcher.submit(texts_of(text_tokenizer, [5, 5]), "fast", False, None)
        assert caught.value.code is Code.RESOURCE_EXHAUSTED
        return batcher.depth

    assert run(scenario()) == 2  # nothing of the refused request was queued


def test_after_an_idle_spell_a_lone_text_starts_at_once(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> float:
        batcher = make_batcher()
        batcher.submit(texts_of(text_tokenizer, [5]), "fast", False, None)
        return batcher.company_delay(time.monotonic())

    assert run(scenario()) == 0.0


def test_while_busy_a_batch_waits_for_the_callers_just_answered(
    text_tokenizer: TextTokenizer,
) -> None:
    async def scenario() -> tuple[float, float]:
        batcher = make_batcher()  # max_wait 60 s
        batcher.last_batch_texts = 4  # four callers are cycling through the server
        batcher.submit(texts_of(text_tokenizer, [5]), "fast", False, None)
        alone = batcher.company_delay(time.monotonic())
        batcher.submit(texts_of(text_tokenizer, [5, 6, 7]), "fast", False, None)
        return alone, batcher.company_delay(time.monotonic())

    alone, together = run(scenario())
    assert 50 < alone <= 60  # waits (up to max_wait) for the three callers on their way
    assert together == 0.0  # they came: start at once


def test_results_reach_exactly_their_callers(text_tokenizer: TextTokenizer) -> None:
    async def scenario() -> list[tuple[list[EncodedText], list[ItemResult]]]:
        batcher = make_batcher(max_batch_texts=3, max_wait_ms=0.0)
        batcher.start()
        rng = random.Random(5)
        requests = [texts_of(text_tokenizer, rng.choices(range(3, 30), k=4)) for _ in range(6)]
        futures = [batcher.submit(texts, "fast", True, None) for texts in requests]
        answered = [await request for request in futures]
        await batcher.stop()
        return list(zip(requests, answered, strict=True))

    for texts, results in run(scenario()):
        for text, result in zip(texts, results, strict=True):
            assert result.pooled.tolist() == [text.ids[1], text.length]
            assert result.token_embeddings is not None
            assert result.token_embeddings[:, 0].tolist() == text.ids.tolist()


def test_a_request_split_over_batches_completes_once_all_its_texts_are_done(
    text_tokenizer: TextTokenizer,
) -> None:
    async def scenario() -> tuple[bool, list[int]]:
        batcher = make_batcher(max_batch_texts=2)
        texts = texts_of(text_tokenizer, [5, 40, 6, 41])
        future = batcher.submit(texts, "fast", False, None)
        first = batcher.form_batch()
        results, stats = batcher.infer(first)
        batcher.deliver(first, results, stats)
        partly = future.done()
        second = batcher.form_batch()
        results, stats = batcher.infer(second)
        batcher.deliver(second, results, stats)
        return partly, [int(result.pooled[1]) for result in await future]

    partly, lengths = run(scenario())
    assert not partly
    assert lengths == [5, 40, 6, 41]  # every text's result, in the request's order


def test_a_failed_request_leaves_its_neighbours_in_the_batch_alone(
    text_tokenizer: TextTokenizer,
) -> None:
    async def scenario() -> tuple[bool, list[int]]:
        batcher = make_batcher()
        doomed = batcher.submit(texts_of(text_tokenizer, [5, 6]), "fast", False, None)
        kept = batcher.submit(texts_of(text_tokenizer, [5, 6]), "fast", False, None)
        batch = batcher.form_batch()
        assert len(batch) == 4
        doomed.cancel()  # its caller left while the batch ran
        results, stats = batcher.infer(batch)
        batcher.deliver(batch, results, stats)
        return doomed.cancelled(), [int(result.pooled[1]) for result in await kept]

    cancelled, lengths = run(scenario())
    assert cancelled
    assert lengths == [5, 6]
