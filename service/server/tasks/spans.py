"""Late chunking's one rule: which of a document's tokens make each chunk, and their mean.

A chunk is a character span of its document, [start, end) in Unicode code points (Python str
indices, as `Tokenize` reports offsets), or a run of N consecutive tokens. A token belongs to a
span when its own character offsets overlap it (`token.start < end and token.end > start`; a
zero-width token belongs when `start <= token.start < end`), so a span cut inside a word takes
the whole word-piece, and two spans cut inside one token share it (a byte-level BPE splits one
character into several tokens with that character's offsets: a span holding the character takes
them all). Every-N chunks take each token exactly once, in order. Only the document's own
tokens belong to chunks: the special tokens the tokenizer adds ([CLS], [SEP], <s> ...) and an
instruction prompt's tokens are never pooled, though every token, theirs included, took part in
the attention that made the vectors. A chunk's vector is the plain mean of its tokens' vectors
(the model's normalisation follows, in the task).

Spans are judged against the whole, untruncated document: a span holding no token at all
(whitespace only) is refused; a span whose tokens were all truncated away is `outside` the run
(no vector, reported as such); one that lost some of them is `cut` and pools the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attnserve.service.server.errors import invalid
from attnserve.service.server.tokenizer import EncodedText, prompt_mask


@dataclass(frozen=True)
class DocumentTokens:
    """Every token of a document's untruncated encoding, in the document's coordinates."""

    starts: np.ndarray  # (m,) int64 code-point offsets into the document (prompt excluded)
    ends: np.ndarray  # (m,) int64, exclusive
    content: np.ndarray  # (m,) bool: a token of the document's text (not special, not prompt)
    rows: np.ndarray  # (m,) int64: the token's row in the model's run; -1 when truncated away

    @classmethod
    def of(cls, text: EncodedText) -> DocumentTokens:
        """The tokens of one encoded text (encoded with offsets), whatever truncation kept."""
        encoding, shift = text.encoding, text.prompt_chars
        count = len(encoding.ids)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(count, 2)
        content = ~np.asarray(encoding.special_tokens_mask, dtype=bool)
        if shift:
            content &= ~prompt_mask(encoding, shift)
        rows = np.arange(count, dtype=np.int64)
        if text.kept is not None:
            rows = np.full(count, -1, dtype=np.int64)
            rows[text.kept] = np.arange(len(text.kept), dtype=np.int64)
        return cls(offsets[:, 0] - shift, offsets[:, 1] - shift, content, rows)


@dataclass(frozen=True)
class Chunk:
    start: int  # the span, [start, end) in code points (made from the tokens in N-token mode)
    end: int
    rows: np.ndarray  # (k,) the rows of the run its vector pools, in order
    tokens: int  # its tokens in the whole document (k of them were run)

    @property
    def outside(self) -> bool:
        """Every one of its tokens was truncated away: it has no vector."""
        return self.rows.size == 0

    @property
    def cut(self) -> bool:
        """Some of its tokens were truncated away: its vector pools the rest."""
        return 0 < self.rows.size < self.tokens


def check_spans(
    spans: Sequence[tuple[int, int]], length: int, document: int, max_chunks: int
) -> None:
    """Refuse, before any tokenising, spans no document could hold."""
    if len(spans) > max_chunks:
        raise invalid(
            f"document {document} has {len(spans)} chunks, over the limit of {max_chunks} "
            "per document (max_chunks_per_document)"
        )
    for index, (start, end) in enumerate(spans):
        where = f"document {document}, chunk {index} ({start}..{end})"
        if start < 0 or end < 0:
            raise invalid(f"{where}: offsets must not be negative")
        if start > end:
            raise invalid(f"{where}: the span is reversed (start after end)")
        if start == end:
            raise invalid(f"{where}: the span is empty")
        if end > length:
            raise invalid(
                f"{where}: the span ends past the document's {length} characters "
                "(offsets are Unicode code points)"
            )


def span_members(tokens: DocumentTokens, start: int, end: int) -> np.ndarray:
    """(m,) bool: the document's tokens that overlap [start, end)."""
    starts, ends = tokens.starts, tokens.ends
    overlap = (starts < end) & (ends > start)
    point = (starts == ends) & (starts >= start) & (starts < end)  # zero-width tokens
    members: np.ndarray = tokens.content & (overlap | point)
    return members


def chunks_from_spans(
    tokens: DocumentTokens, spans: Sequence[tuple[int, int]], document: int
) -> list[Chunk]:
    """One chunk per span (checked by `check_spans`); a span holding no token is refused."""
    chunks = []
    for index, (start, end) in enumerate(spans):
        positions = np.flatnonzero(span_members(tokens, start, end))
        if positions.size == 0:
            raise invalid(
                f"document {document}, chunk {index} ({start}..{end}) covers no token "
                "(only characters the tokenizer drops, such as spaces)"
            )
        chunks.append(chunk_of(tokens, positions, start, end))
    return chunks


def chunks_every(tokens: DocumentTokens, size: int, document: int, max_chunks: int) -> list[Chunk]:
    """The document's own tokens in runs of `size` (the last may be shorter), each a chunk
    whose span runs from its first token's start to its last token's end."""
    content = np.flatnonzero(tokens.content)
    count = -(-content.size // size)
    if count > max_chunks:
        raise invalid(
            f"document {document}: {content.size} tokens every {size} make {count} chunks, "
            f"over the limit of {max_chunks} per document (max_chunks_per_document)"
        )
    if count == 0:
        raise invalid(f"document {document} has no token to chunk")
    return [
        chunk_of(tokens, group, int(tokens.starts[group[0]]), int(tokens.ends[group[-1]]))
        for group in (content[i : i + size] for i in range(0, content.size, size))
    ]


def chunk_of(tokens: DocumentTokens, positions: np.ndarray, start: int, end: int) -> Chunk:
    rows = tokens.rows[positions]
    return Chunk(start, end, rows[rows >= 0], int(positions.size))


def pool(vectors: np.ndarray, chunks: Sequence[Chunk]) -> np.ndarray:
    """(C, H): the mean of each chunk's rows of `vectors` (n, H), for the chunks not outside.

    A chunk's rows are consecutive whenever the tokenizer's offsets rise along the text (every
    tokenizer we serve): its sum is then a difference of running sums, O(n + C) for any number
    of overlapping chunks; otherwise its rows are gathered."""
    inside = [chunk for chunk in chunks if not chunk.outside]
    running = np.zeros((vectors.shape[0] + 1, vectors.shape[1]), dtype=np.float64)
    np.cumsum(vectors, axis=0, dtype=np.float64, out=running[1:])  # (n + 1, H)
    pooled = np.empty((len(inside), vectors.shape[1]), dtype=np.float32)
    for index, chunk in enumerate(inside):
        first, last = int(chunk.rows[0]), int(chunk.rows[-1])
        if last - first + 1 == chunk.rows.size and bool(np.all(np.diff(chunk.rows) == 1)):
            pooled[index] = (running[last + 1] - running[first]) / chunk.rows.size
        else:
            pooled[index] = vectors[chunk.rows].mean(axis=0, dtype=np.float64)
    return pooled
