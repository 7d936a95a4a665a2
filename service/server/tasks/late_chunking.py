"""The `late_chunking` task: one vector per chunk of a document, pooled from token vectors that
were computed over the whole document, so each chunk's vector saw its context.

An operation an embedder offers beside `embed`, over the same pipeline: each document is one
text of the batcher (documents batch like texts), run whole once on the fast graph (the maps
graph when attention maps are asked for), up to the token cap: over it, a document is refused
unless the request allows truncation, and then the chunks that fell outside are reported.
Which tokens make a chunk is `late_chunk_spans.py`'s rule; the vectors are normalised when the
model normalises (or the request says so), as `embed`'s pooled vectors are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from attnserve.service.server.errors import invalid
from attnserve.service.server.options import (
    ChunkDocument,
    LateChunkOptions,
    TokenizeOptions,
    Truncation,
)
from attnserve.service.server.pipeline import Ran, Tokenized
from attnserve.service.server.tasks.attention_maps import (
    NO_MAPS,
    MapsPlan,
    check_attention_elements,
    check_response_bytes,
    plan,
    select_maps,
)
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tasks.spans import (
    Chunk,
    DocumentTokens,
    check_spans,
    chunks_every,
    chunks_from_spans,
    pool,
)
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText
from attnserve.service.vectors import normalize_rows


@dataclass(frozen=True)
class ChunkedDocument:
    chunks: list[Chunk]  # every chunk asked for (or made), in order
    vectors: np.ndarray  # (chunks not outside, H), in chunk order
    attentions: list[np.ndarray | None]  # per chunk: (layers, heads or 1, k, n); None outside
    token_count: int  # tokens run, special tokens included (after truncation)
    truncated: bool
    prompt_tokens: int = 0


@dataclass(frozen=True)
class LateChunkResult:
    documents: list[ChunkedDocument]
    timings: Timings
    layers: tuple[int, ...]  # attention layers returned, in order
    heads: tuple[int, ...]  # attention heads returned (before averaging)
    prompt_name: str = ""


@dataclass(frozen=True)
class ChunkAdmission:
    """A late-chunking request past every check: its tokens, each document's chunks, and the
    attention maps (layers, heads, graph) asked for."""

    tokenized: Tokenized
    chunks: list[list[Chunk]]
    maps: MapsPlan = NO_MAPS


class LateChunkTask:
    name: ClassVar[str] = "late_chunking"

    def __init__(self, embed: EmbedTask) -> None:
        self.embed = embed  # the same model's embeddings: its attention checks and its model
        self.pipeline = embed.pipeline
        self.model = embed.model
        self.limits = embed.limits

    async def chunk(
        self, documents: list[ChunkDocument], options: LateChunkOptions, deadline: float | None
    ) -> LateChunkResult:
        """Every refusal first (`admit`), then one run of every document, then the chunks
        pooled (`finish`)."""
        admitted = await self.admit(documents, options)
        ran = await self.pipeline.run(admitted.tokenized, admitted.maps.purpose, True, deadline)
        return self.finish(admitted, ran, options)

    async def admit(
        self, documents: list[ChunkDocument], options: LateChunkOptions
    ) -> ChunkAdmission:
        """Documents and spans, then queue room and tokens (the pipeline's), the cap, each
        chunk's tokens, the attention asked for and the response's size."""
        self.check_documents(documents)
        refuse = options.truncation is Truncation.NONE  # refused below, in a document's words
        cut = Truncation.END if refuse else options.truncation
        tokenizing = TokenizeOptions(cut, options.max_tokens, options.prompt_name)
        texts = [document.text for document in documents]
        tokenized = await self.pipeline.admit(texts, tokenizing, offsets=True)
        if refuse:
            self.check_cap(tokenized.texts, options.max_tokens)
        chunks = [
            self.plan(document, text, index)
            for index, (document, text) in enumerate(zip(documents, tokenized.texts, strict=True))
        ]
        maps = plan(self.model, self.embed.maps_available, options.attention)
        self.check_size(tokenized.texts, chunks, options, maps.per_token_pair)
        return ChunkAdmission(tokenized, chunks, maps)

    def finish(
        self, admitted: ChunkAdmission, ran: Ran, options: LateChunkOptions
    ) -> LateChunkResult:
        """Each document's chunks pooled from its token vectors (normalised as the model's
        vectors are), and their rows of the attention maps asked for."""
        normalize = self.model.normalize if options.normalize is None else options.normalize
        planned = admitted.maps
        results = []
        for text, chunks, result in zip(
            admitted.tokenized.texts, admitted.chunks, ran.results, strict=True
        ):
            assert result.token_embeddings is not None  # asked for in `chunk`
            vectors = pool(result.token_embeddings, chunks)  # (C, H)
            if normalize:
                vectors = normalize_rows(vectors)
            maps: list[np.ndarray | None] = [None] * len(chunks)
            if planned.layers and result.attentions is not None:
                selected = select_maps(result.attentions, planned)  # (l, h or 1, n, n)
                maps = [None if c.outside else selected[:, :, c.rows, :] for c in chunks]
            counts = (text.length, text.truncated, text.prompt_tokens)
            results.append(ChunkedDocument(chunks, vectors, maps, *counts))
        prompt = admitted.tokenized.prompt.name
        return LateChunkResult(results, ran.timings, planned.layers, planned.heads, prompt)

    def check_documents(self, documents: list[ChunkDocument]) -> None:
        if not documents:
            raise invalid("the request has no documents")
        limit = self.limits.max_late_chunking_documents
        if len(documents) > limit:
            raise invalid(
                f"{len(documents)} documents: at most {limit} documents per late-chunking "
                "request (max_late_chunking_documents)"
            )
        for index, document in enumerate(documents):
            self.limits.check_text(f"document {index}", document.text)
            if document.tokens_per_chunk < 0:
                raise invalid(f"document {index}: tokens_per_chunk must not be negative")
            if bool(document.spans) == bool(document.tokens_per_chunk):
                raise invalid(
                    f"document {index}: give either chunk spans or tokens_per_chunk "
                    f"({'both' if document.spans else 'neither'} given)"
                )
            check_spans(
                document.spans, len(document.text), index, self.limits.max_chunks_per_document
            )

    def check_cap(self, texts: list[EncodedText], max_tokens: int | None) -> None:
        for index, text in enumerate(texts):
            if text.truncated:
                cap = max_tokens or self.pipeline.default_max_tokens
                raise invalid(
                    f"document {index} has {len(text.encoding.ids)} tokens, over the limit of "
                    f"{cap}; shorten it, or allow truncation (the chunks past the cut are then "
                    "reported outside)"
                )

    def plan(self, document: ChunkDocument, text: EncodedText, index: int) -> list[Chunk]:
        """The document's chunks as rows of its run; a span with no token is refused here,
        before any inference."""
        tokens = DocumentTokens.of(text)
        if document.tokens_per_chunk:
            limit = self.limits.max_chunks_per_document
            return chunks_every(tokens, document.tokens_per_chunk, index, limit)
        return chunks_from_spans(tokens, document.spans, index)

    def check_size(
        self,
        texts: list[EncodedText],
        chunks: list[list[Chunk]],
        options: LateChunkOptions,
        maps_per_token: int,
    ) -> None:
        """Attention rows within max_attention_elements, and the whole response within what
        the transport may send: refused before inference, as `embed` refuses."""
        hidden = self.model.hidden_size
        elements = vectors = 0
        for text, planned in zip(texts, chunks, strict=True):
            pooled_rows = sum(chunk.rows.size for chunk in planned)
            elements += maps_per_token * pooled_rows * text.length
            vectors += sum(not chunk.outside for chunk in planned)
        check_attention_elements(
            self.limits,
            elements,
            what="the chunks' attention rows asked for",
            fewer="send fewer or shorter documents",
        )
        chunk_count = sum(len(planned) for planned in chunks)
        size = (vectors * hidden + elements) * options.float_bytes + 1024 + 64 * chunk_count
        advice = "send fewer documents or chunks, fewer attention maps, or float16"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)
