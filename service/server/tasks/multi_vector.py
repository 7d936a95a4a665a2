"""The `embed_multi_vector` task: texts -> one unit vector per kept token, with its place.

For a model whose manifest has a `multi_vector` head: ColBERT's, whose texts are prepared as
PyLate prepares them (`service/multi_vector.py`: the query or document marker after the first
token, a query expanded with [MASK] to its fixed length and every position kept, a document's
skiplist left out), or bge-m3's (every real token but the first). Each vector comes with its
token's id and character span in the text ((0, 0) for a marker, an expansion or a special
token). The answer is bounded by tokens x dims, checked after tokenising and before inference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from attnserve.service import multi_vector
from attnserve.service.artifact import MultiVectorSpec
from attnserve.service.server.options import TokenizeOptions, Truncation
from attnserve.service.server.pipeline import Pipeline, Ran
from attnserve.service.server.tasks.attention_maps import check_response_bytes
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText

NO_SPAN = (0, 0)


@dataclass(frozen=True)
class MultiVectorOptions:
    is_query: bool = False
    truncation: Truncation = Truncation.END
    max_tokens: int | None = None  # before the marker; None: the side's length (or default)
    float_bytes: int = 4


@dataclass(frozen=True)
class TokenVectors:
    vectors: np.ndarray  # (k, D) unit rows, float32
    token_ids: np.ndarray  # (k,) int64
    spans: list[tuple[int, int]]  # (k,) character [start, end) in the text; NO_SPAN if added
    token_count: int  # tokens the model ran, marker and expansion included
    truncated: bool


@dataclass(frozen=True)
class Encoded:
    """A request's texts as tokenised (`original`: spans come from them), as run (`ready`),
    and the batcher's answer."""

    original: list[EncodedText]
    ready: list[EncodedText]
    ran: Ran

    @property
    def tokens(self) -> int:
        return sum(text.length for text in self.ready)

    def rows(self, spec: MultiVectorSpec, is_query: bool) -> list[np.ndarray]:
        """Each text's kept positions (of its prepared ids)."""
        return [kept_rows(text, spec, is_query) for text in self.ready]


def kept_rows(text: EncodedText, spec: MultiVectorSpec, is_query: bool) -> np.ndarray:
    attention = [1] * text.length if text.attention is None else text.attention.tolist()
    view = multi_vector.PreparedText(text.ids.tolist(), attention)
    return multi_vector.kept_rows(view, spec, is_query)


@dataclass(frozen=True)
class MultiVectorResult:
    texts: list[TokenVectors]
    tokens: int
    timings: Timings


def prepared(text: EncodedText, spec: MultiVectorSpec, is_query: bool) -> EncodedText:
    """The text as the graph runs it: marker, expansion and their attention."""
    ready = multi_vector.prepare(text.ids.tolist(), spec, is_query)
    ids = np.asarray(ready.ids, dtype=np.int64)
    attention = np.asarray(ready.attention, dtype=np.int64)
    return replace(
        text, ids=ids, type_ids=np.zeros_like(ids),
        attention=None if attention.all() else attention,
    )  # fmt: skip


def char_spans(text: EncodedText, spec: MultiVectorSpec, is_query: bool) -> list[tuple[int, int]]:
    """Each position of the prepared text -> its token's span in the text (NO_SPAN: added)."""
    offsets, specials = text.encoding.offsets, text.encoding.special_tokens_mask
    spans = [NO_SPAN if specials[i] else tuple(offsets[i]) for i in text.kept_positions()]
    marker = spec.query_marker_id if is_query else spec.document_marker_id
    if marker is not None and spans:
        spans.insert(1, NO_SPAN)
    return [(int(a), int(b)) for a, b in spans]


class MultiVectorTask:
    name: ClassVar[str] = "embed_multi_vector"

    def __init__(self, pipeline: Pipeline, spec: MultiVectorSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.limits = pipeline.limits

    async def encode(
        self, texts: list[str], options: MultiVectorOptions, deadline: float | None
    ) -> Encoded:
        """The texts prepared for their side and run; shared with MaxSim rerank."""
        spec, is_query = self.spec, options.is_query
        cap = multi_vector.token_cap(spec, is_query, self.pipeline.default_max_tokens)
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens or cap, "")
        tokenized = await self.pipeline.admit(texts, tokenizing, offsets=True)
        ready = [prepared(text, spec, is_query) for text in tokenized.texts]
        floats = sum(len(t.ids) for t in ready) * spec.dim
        size = options.float_bytes * floats + 24 * sum(len(t.ids) for t in ready) + 64 * len(ready)
        advice = "send fewer or shorter texts, or ask for float16"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)
        running = replace(tokenized, texts=ready)
        ran = await self.pipeline.run(running, "fast", False, deadline, (spec.output,))
        return Encoded(tokenized.texts, ready, ran)

    async def embed_multi_vector(
        self, texts: list[str], options: MultiVectorOptions, deadline: float | None
    ) -> MultiVectorResult:
        encoded = await self.encode(texts, options, deadline)
        answered = []
        rows = encoded.rows(self.spec, options.is_query)
        each = zip(encoded.original, encoded.ready, encoded.ran.results, rows, strict=True)
        for original, text, result, kept in each:
            spans = char_spans(original, self.spec, options.is_query)
            spans += [NO_SPAN] * (text.length - len(spans))  # the expansion
            answered.append(
                TokenVectors(
                    result.outputs[self.spec.output][kept], text.ids[kept],
                    [spans[i] for i in kept], text.length, text.truncated,
                )
            )  # fmt: skip
        return MultiVectorResult(answered, encoded.tokens, encoded.ran.timings)
