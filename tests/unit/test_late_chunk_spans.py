"""Late chunking's span -> token rule on a real (tiny, word-level) tokenizer, and the task over
the unit layer's fake engine (whose token vectors are the token ids: a pooled chunk says which
tokens it averaged)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import ChunkDocument, LateChunkOptions, Truncation
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tasks.late_chunking import LateChunkResult, LateChunkTask
from attnserve.service.server.tasks.spans import (
    Chunk,
    DocumentTokens,
    check_spans,
    chunks_every,
    chunks_from_spans,
    pool,
)
from attnserve.service.server.tokenizer import TextTokenizer
from tests.unit.fakes import FakeEngine, fake_model

# [CLS] the(0,3) bank(4,8) by(9,11) the(12,15) river(16,21) [SEP]: rows 0..6
TEXT = "the bank by the river"


def tokens_of(
    tokenizer: TextTokenizer,
    text: str = TEXT,
    truncation: Truncation = Truncation.END,
    max_tokens: int = 64,
    prompt: str = "",
) -> DocumentTokens:
    (encoded,) = tokenizer.encode([text], truncation, max_tokens, offsets=True, prompt=prompt)
    return DocumentTokens.of(encoded)


def rows(chunks: list[Chunk]) -> list[list[int]]:
    return [chunk.rows.tolist() for chunk in chunks]


def test_a_token_belongs_to_every_span_its_characters_overlap(
    text_tokenizer: TextTokenizer,
) -> None:
    tokens = tokens_of(text_tokenizer)
    spans = [(0, 8), (5, 10), (0, 21), (10, 11), (8, 9)]
    chunks = chunks_from_spans(tokens, spans[:4], 0)
    # Whole words; a cut inside "bank" and "by" takes both; special tokens (rows 0, 6) never.
    assert rows(chunks) == [[1, 2], [2, 3], [1, 2, 3, 4, 5], [3]]
    assert [(c.start, c.end, c.tokens) for c in chunks][:2] == [(0, 8, 2), (5, 10, 2)]
    assert not any(chunk.outside or chunk.cut for chunk in chunks)
    with pytest.raises(ServiceError, match=r"document 0, chunk 0 \(8\.\.9\) covers no token"):
        chunks_from_spans(tokens, spans[4:], 0)  # the space between "bank" and "by"


@pytest.mark.parametrize(
    ("span", "words"),
    [
        ((5, 3), "document 2, chunk 1 (5..3): the span is reversed"),
        ((4, 4), "document 2, chunk 1 (4..4): the span is empty"),
        ((4, 22), "chunk 1 (4..22): the span ends past the document's 21 characters"),
        ((-1, 3), "chunk 1 (-1..3): offsets must not be negative"),
    ],
)
def test_bad_spans_are_refused_naming_the_document_and_the_chunk(
    span: tuple[int, int], words: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        check_spans([(0, 3), span], len(TEXT), 2, 8)
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert words in refused.value.message


def test_more_spans_than_the_limit_are_refused() -> None:
    with pytest.raises(ServiceError, match="3 chunks, over the limit of 2 per document"):
        check_spans([(0, 1), (1, 2), (2, 3)], len(TEXT), 0, 2)


def test_every_n_tokens_runs_over_the_documents_own_tokens(text_tokenizer: TextTokenizer) -> None:
    chunks = chunks_every(tokens_of(text_tokenizer), 2, 0, 8)
    assert rows(chunks) == [[1, 2], [3, 4], [5]]
    assert [(c.start, c.end) for c in chunks] == [(0, 8), (9, 15), (16, 21)]
    with pytest.raises(ServiceError, match="5 tokens every 1 make 5 chunks, over the limit of 4"):
        chunks_every(tokens_of(text_tokenizer), 1, 0, 4)


def test_chunks_cut_away_by_truncation_are_outside_and_half_cut_ones_pool_the_rest(
    text_tokenizer: TextTokenizer,
) -> None:
    # Cut at the end to 4 tokens: [CLS] the bank [SEP].
    kept_start = tokens_of(text_tokenizer, truncation=Truncation.END, max_tokens=4)
    chunks = chunks_from_spans(kept_start, [(0, 3), (4, 11), (12, 21)], 0)
    assert rows(chunks) == [[1], [2], []]
    assert [(c.outside, c.cut) for c in chunks] == [(False, False), (False, True), (True, False)]
    # Cut at the start: [CLS] the river [SEP]; the first "the" is gone, the second stays.
    kept_end = tokens_of(text_tokenizer, truncation=Truncation.START, max_tokens=4)
    chunks = chunks_from_spans(kept_end, [(0, 3), (12, 21)], 0)
    assert rows(chunks) == [[], [1, 2]]
    assert rows(chunks_every(kept_end, 2, 0, 8)) == [[], [1], [2]]


def test_a_prompts_tokens_are_attended_to_but_never_pooled(text_tokenizer: TextTokenizer) -> None:
    # "a b " before the text: [CLS] a b the bank by the river [SEP]; offsets stay the text's.
    tokens = tokens_of(text_tokenizer, prompt="a b ")
    assert rows(chunks_from_spans(tokens, [(0, 8), (0, 21)], 0)) == [[3, 4], [3, 4, 5, 6, 7]]
    assert rows(chunks_every(tokens, 3, 0, 8)) == [[3, 4, 5], [6, 7]]


def test_pooling_is_the_mean_of_each_chunks_rows() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2) ** 2  # (n, H)
    chunks = [
        Chunk(0, 1, np.array([1, 2, 3]), 3),
        Chunk(0, 1, np.array([], dtype=np.int64), 2),  # outside: no row
        Chunk(0, 1, np.array([0, 4]), 2),  # not consecutive: gathered
        Chunk(0, 1, np.array([5]), 1),
    ]
    expected = [vectors[[1, 2, 3]].mean(0), vectors[[0, 4]].mean(0), vectors[5]]
    np.testing.assert_allclose(pool(vectors, chunks), np.stack(expected), rtol=1e-6)


def run_task(
    tokenizer_file: Path, documents: list[ChunkDocument], options: LateChunkOptions
) -> tuple[LateChunkResult, FakeEngine]:
    engine = FakeEngine()
    model = fake_model("fake", tokenizer_file, engine)
    task = LateChunkTask(model.task(EmbedTask))

    async def scenario() -> LateChunkResult:
        model.batcher.start()
        try:
            return await task.chunk(documents, options, None)
        finally:
            await model.batcher.stop()

    return asyncio.run(scenario()), engine


def test_the_task_runs_each_document_whole_once_and_pools_its_chunks(
    tokenizer_file: Path, text_tokenizer: TextTokenizer
) -> None:
    documents = [
        ChunkDocument(TEXT, spans=((4, 11), (0, 3))),
        ChunkDocument("money by the bank", tokens_per_chunk=3),
    ]
    result, engine = run_task(tokenizer_file, documents, LateChunkOptions())
    ids = [text_tokenizer.encode([d.text], Truncation.END, 64)[0].ids for d in documents]
    # One model run of both whole documents; the fake's token vectors are the ids.
    assert sum(batch.input_ids.shape[0] for batch in engine.batches) == 2
    first, second = result.documents
    np.testing.assert_allclose(first.vectors[:, 0], [ids[0][2:4].mean(), ids[0][1]])
    np.testing.assert_allclose(second.vectors[:, 0], [ids[1][1:4].mean(), ids[1][4]])
    assert [(c.start, c.end) for c in second.chunks] == [(0, 12), (13, 17)]
    assert (first.token_count, first.truncated) == (7, False)


def test_the_task_refuses_an_over_long_document_unless_asked_to_cut_it(
    tokenizer_file: Path,
) -> None:
    documents = [ChunkDocument(TEXT, spans=((0, 3), (16, 21)))]
    with pytest.raises(ServiceError, match="document 0 has 7 tokens, over the limit of 4"):
        run_task(tokenizer_file, documents, LateChunkOptions(max_tokens=4))
    cut = LateChunkOptions(truncation=Truncation.END, max_tokens=4)
    result, _ = run_task(tokenizer_file, documents, cut)
    (document,) = result.documents
    assert document.truncated
    assert [chunk.outside for chunk in document.chunks] == [False, True]
    assert document.vectors.shape == (1, 2)


@pytest.mark.parametrize(
    ("documents", "words"),
    [
        ([], "the request has no documents"),
        ([ChunkDocument("")], "document 0 is empty"),
        ([ChunkDocument(TEXT)], "document 0: give either chunk spans or tokens_per_chunk"),
        ([ChunkDocument(TEXT, ((0, 3),), 2)], "(both given)"),
        ([ChunkDocument(TEXT, ((3, 0),))], "document 0, chunk 0 (3..0): the span is reversed"),
    ],
)
def test_the_task_refuses_bad_requests_before_any_inference(
    tokenizer_file: Path, documents: list[ChunkDocument], words: str
) -> None:
    engine = FakeEngine()
    with pytest.raises(ServiceError) as refused:
        run_task(tokenizer_file, documents, LateChunkOptions())
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert words in refused.value.message
    assert engine.batches == []


def test_byte_level_bpe_offsets_are_code_points_and_every_token_is_pooled_once(
    tmp_path: Path,
) -> None:
    """A byte-level BPE (ModernBERT's, RoBERTa's kind) splits one character into several tokens
    that share its offsets: spans still follow the overlap rule in code points, and every-N
    chunks still take each of the document's tokens exactly once, in order."""
    from tests.support.mpnet_modernbert_checkpoints import build_bpe_tokenizer

    tokenizer = TextTokenizer(build_bpe_tokenizer(tmp_path / "bpe.json"), max_tokens=256)
    text = "Zürich 東京 🚀 naïve façade — déjà vu"
    (encoded,) = tokenizer.encode([text], Truncation.END, 256, offsets=True)
    tokens = DocumentTokens.of(encoded)
    offsets = encoded.encoding.offsets
    own = [i for i, special in enumerate(encoded.encoding.special_tokens_mask) if not special]
    assert all(0 <= offsets[i][0] < offsets[i][1] <= len(text) for i in own)
    spans = [(0, 6), (7, 8), (8, 9), (10, 11), (7, 11), (12, len(text))]
    for (start, end), chunk in zip(spans, chunks_from_spans(tokens, spans, 0), strict=True):
        expected = [i for i in own if offsets[i][0] < end and offsets[i][1] > start]
        assert chunk.rows.tolist() == expected, text[start:end]
    for size in (1, 2, 5):
        pooled = np.concatenate([chunk.rows for chunk in chunks_every(tokens, size, 0, 64)])
        assert pooled.tolist() == own


def test_a_model_without_the_task_refuses_it_naming_what_it_offers(tokenizer_file: Path) -> None:
    model = fake_model("embed-only", tokenizer_file, FakeEngine())  # built without LateChunkTask
    with pytest.raises(ServiceError, match=r"does not offer late_chunking \(it offers: embed\)"):
        model.task(LateChunkTask)
