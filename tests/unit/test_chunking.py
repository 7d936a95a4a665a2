"""Chunked embeddings' arithmetic: where windows start, what each window holds (the special
tokens and the prompt repeated around a slice of the text), how their vectors are pooled, and
that a document's windows pass through the batcher and its queue as that many texts."""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import EmbedOptions, Truncation
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tasks.windows import Windows, max_overlap, pool, split, window_starts
from attnserve.service.server.tokenizer import EncodedText, TextTokenizer

from .fakes import LIMITS, FakeEngine, fake_model

TEXT = "a b c d e f g h"  # [CLS] a b c d e f g h [SEP]: 10 tokens, 8 of them text


@pytest.mark.parametrize("content", range(1, 40))
@pytest.mark.parametrize(("room", "overlap"), [(1, 0), (4, 0), (4, 1), (5, 2), (8, 3), (7, 0)])
def test_windows_cover_every_token_sharing_exactly_the_overlap(
    content: int, room: int, overlap: int
) -> None:
    starts = window_starts(content, room, overlap)
    spans = [(start, min(start + room, content)) for start in starts]
    assert spans[0][0] == 0
    assert spans[-1][1] == content
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert end - start == room  # only the last window may be short
        assert end - next_start == overlap  # neighbours share exactly the overlap
    assert len(starts) == 1 + max(0, math.ceil((content - room) / (room - overlap)))


def test_a_text_that_fits_is_one_window() -> None:
    assert window_starts(4, 4, 1) == [0]
    assert window_starts(8, 3, 1) == [0, 2, 4, 6]


@pytest.mark.parametrize(("room", "overlap"), [(0, 0), (4, 4), (4, -1)])
def test_window_arithmetic_refuses_an_overlap_that_leaves_no_new_tokens(
    room: int, overlap: int
) -> None:
    with pytest.raises(ValueError, match="need room >= 1"):
        window_starts(10, room, overlap)


def test_the_overlap_stays_under_half_a_window() -> None:
    assert [max_overlap(room) for room in (1, 2, 3, 4, 5, 510)] == [0, 0, 1, 1, 2, 254]


def tokens(window: EncodedText) -> list[str]:
    return [window.encoding.tokens[i] for i in window.kept_positions()]


def document(tokenizer: TextTokenizer, text: str = TEXT, prompt: str = "") -> EncodedText:
    (encoded,) = tokenizer.encode([text], Truncation.NONE, 64, prompt=prompt)
    return encoded


def test_each_window_is_a_slice_of_the_text_framed_by_the_special_tokens(
    text_tokenizer: TextTokenizer,
) -> None:
    windows = split(document(text_tokenizer), 5, 1, asked=True)
    assert [tokens(window) for window in windows.windows] == [
        ["[CLS]", "a", "b", "c", "[SEP]"],
        ["[CLS]", "c", "d", "e", "[SEP]"],
        ["[CLS]", "e", "f", "g", "[SEP]"],
        ["[CLS]", "g", "h", "[SEP]"],
    ]
    for window in windows.windows:  # the ids are the tokens shown
        assert window.ids.tolist() == [window.encoding.ids[i] for i in window.kept_positions()]
    assert windows.weights.tolist() == [5, 5, 5, 4]
    assert windows.tokens_run == 19


def test_the_prompt_is_repeated_in_every_window(text_tokenizer: TextTokenizer) -> None:
    prompted = document(text_tokenizer, prompt="the bank ")
    assert prompted.prompt_tokens == 2
    windows = split(prompted, 6, 0, asked=True)
    assert [tokens(window) for window in windows.windows] == [
        ["[CLS]", "the", "bank", "a", "b", "[SEP]"],
        ["[CLS]", "the", "bank", "c", "d", "[SEP]"],
        ["[CLS]", "the", "bank", "e", "f", "[SEP]"],
        ["[CLS]", "the", "bank", "g", "h", "[SEP]"],
    ]
    assert all(window.prompt_tokens == 2 for window in windows.windows)


def test_a_document_that_fits_its_window_is_returned_untouched(
    text_tokenizer: TextTokenizer,
) -> None:
    whole = document(text_tokenizer)
    assert split(whole, 10, 3, asked=True).windows == [whole]


def test_an_asked_overlap_past_half_a_window_is_refused_and_the_default_is_capped(
    text_tokenizer: TextTokenizer,
) -> None:
    whole = document(text_tokenizer)  # windows of 6 hold 4 text tokens: overlap at most 1
    with pytest.raises(ServiceError, match="chunk_overlap 2 is too large") as caught:
        split(whole, 6, 2, asked=True)
    assert caught.value.code is Code.INVALID_ARGUMENT
    capped = split(whole, 6, 32, asked=False)
    assert [tokens(window)[1:-1] for window in capped.windows] == [
        ["a", "b", "c", "d"],
        ["d", "e", "f", "g"],
        ["g", "h"],
    ]


def test_a_cut_document_reports_its_cut_once(text_tokenizer: TextTokenizer) -> None:
    (cut,) = text_tokenizer.encode([TEXT], Truncation.END, 5, document_tokens=8)
    assert cut.truncated
    assert cut.length == 8
    assert [window.truncated for window in split(cut, 5, 0, asked=True).windows] == [True, False]


def test_a_document_over_max_document_tokens_is_refused_naming_the_limit(
    text_tokenizer: TextTokenizer,
) -> None:
    with pytest.raises(ServiceError, match="text 0 has 10 tokens, over max_document_tokens of 8"):
        text_tokenizer.encode([TEXT], Truncation.NONE, 5, document_tokens=8)


def test_pooling_weighs_each_window_by_its_tokens(text_tokenizer: TextTokenizer) -> None:
    windows = split(document(text_tokenizer), 5, 1, asked=True)  # 5, 5, 5 and 4 tokens
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    expected = (5 * vectors[0] + 5 * vectors[1] + 5 * vectors[2] + 4 * vectors[3]) / 19
    np.testing.assert_allclose(pool(windows, vectors), expected, rtol=1e-6)
    one = Windows(windows.document, windows.windows[:1])
    np.testing.assert_allclose(pool(one, vectors[:1]), vectors[0])


CHUNKED = EmbedOptions(max_tokens=5, chunking=True, chunk_overlap=1, normalize=False)


def test_a_documents_windows_run_through_the_batcher_and_are_pooled(tokenizer_file: Path) -> None:
    engine = FakeEngine()  # pooled = (first text token id, real length) of each row
    model = fake_model("m", tokenizer_file, engine)

    async def scenario() -> tuple[list[int], np.ndarray, list[tuple[int, int, int]]]:
        model.batcher.start()
        try:
            result = await model.task(EmbedTask).embed([TEXT, "a b"], CHUNKED, None)
        finally:
            await model.batcher.stop()
        assert result.pooled is not None
        counts = [(t.token_count, t.windows, t.window_tokens) for t in result.texts]
        return [batch.input_ids.shape[0] for batch in engine.batches], result.pooled, counts

    rows, pooled, counts = asyncio.run(scenario())
    assert sum(rows) == 5  # four windows of the document and the short text, batched
    assert counts == [(10, 4, 19), (4, 1, 4)]
    vocabulary = model.tokenizer.tokenizer.get_vocab()
    firsts = np.array([vocabulary[word] for word in "aceg"], dtype=np.float64)
    weights = np.array([5, 5, 5, 4], dtype=np.float64)
    expected = [(firsts * weights).sum() / 19, (weights * weights).sum() / 19]
    np.testing.assert_allclose(pooled[0], expected, rtol=1e-6)
    np.testing.assert_allclose(pooled[1], [vocabulary["a"], 4])  # one window, as unchunked


def test_windows_count_as_texts_for_the_request_limit_and_the_queue(
    tokenizer_file: Path,
) -> None:
    """A long document cannot slip past the limits by being one text: its windows count."""
    model = fake_model("m", tokenizer_file, FakeEngine())
    task = model.task(EmbedTask)
    long_text = " ".join(["a"] * 40)  # 40 text tokens: 10 windows of 4
    one_window_each = replace(CHUNKED, max_tokens=6, chunk_overlap=0)  # 4 text tokens a window

    async def scenario() -> tuple[int, ServiceError, ServiceError]:
        # The inference thread is not started: whatever is queued stays queued.
        model.batcher.loop = asyncio.get_running_loop()
        waiting = [
            asyncio.ensure_future(task.embed([long_text], one_window_each, None)) for _ in range(9)
        ]
        await asyncio.sleep(0.05)
        depth = model.batcher.depth  # 9 documents of 10 windows each
        with pytest.raises(ServiceError) as full:
            await task.embed([" ".join(["a"] * 44)], one_window_each, None)  # 11 windows
        with pytest.raises(ServiceError) as too_many:
            await task.embed([" ".join(["a"] * 68)], one_window_each, None)  # 17 windows
        for future in waiting:
            future.cancel()
        return depth, full.value, too_many.value

    depth, full, too_many = asyncio.run(scenario())
    assert depth == 90
    assert LIMITS.max_queue_texts == 100
    assert full.code is Code.RESOURCE_EXHAUSTED
    assert "queue is full" in full.message
    assert too_many.code is Code.INVALID_ARGUMENT
    assert "17 windows, over the limit of 16 texts per request" in too_many.message


def test_per_token_vectors_of_a_text_in_several_windows_are_refused(
    tokenizer_file: Path,
) -> None:
    model = fake_model("m", tokenizer_file, FakeEngine())
    asking = replace(CHUNKED, token_embeddings=True)
    with pytest.raises(ServiceError, match="text 0 runs as 4 windows") as caught:
        asyncio.run(model.task(EmbedTask).embed([TEXT], asking, None))
    assert caught.value.code is Code.INVALID_ARGUMENT


def test_a_document_limit_below_the_window_never_cuts_a_text_that_fits_one(
    tokenizer_file: Path,
) -> None:
    model = fake_model("m", tokenizer_file, FakeEngine())
    task = model.task(EmbedTask)
    assert isinstance(task, EmbedTask)
    task.limits = replace(LIMITS, max_document_tokens=4)

    async def scenario() -> list[tuple[int, bool, int]]:
        model.batcher.start()
        try:
            fits = await task.embed([TEXT], replace(CHUNKED, max_tokens=12), None)
            longer = await task.embed([TEXT], replace(CHUNKED, max_tokens=6), None)
        finally:
            await model.batcher.stop()
        return [(t.token_count, t.truncated, t.windows) for t in [*fits.texts, *longer.texts]]

    # Within its window of 12: untouched. Over its window of 6: cut at the window (the limit
    # is never below it), so one window.
    assert asyncio.run(scenario()) == [(10, False, 1), (6, True, 1)]
