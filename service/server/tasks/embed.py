"""The `embed` task: texts -> pooled vectors, per-token vectors and attention maps.

One operation a served model offers, over its pipeline (the engine and batcher every task
shares): `admit` checks what only an embedding request can ask for (dimensions, attention
layers and heads, the response's size) around the pipeline's admission; `finish` turns the
batcher's rows into the answer (Matryoshka truncation, normalising, attention selection).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from attnserve.service.artifact import ModelSpec
from attnserve.service.server.batcher import ItemResult
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import EmbedOptions, TokenizeOptions
from attnserve.service.server.pipeline import Pipeline, Ran, Tokenized
from attnserve.service.server.tasks import windows
from attnserve.service.server.tasks.attention_maps import (
    NO_MAPS,
    MapsPlan,
    check_attention_elements,
    check_response_bytes,
    plan,
    select_maps,
)
from attnserve.service.server.tasks.windows import Windows, max_overlap
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText
from attnserve.service.vectors import normalize_rows


@dataclass(frozen=True)
class TextEmbedding:
    token_embeddings: np.ndarray | None  # (n, H)
    attentions: np.ndarray | None  # (layers, heads or 1, n, n)
    token_count: int
    truncated: bool
    prompt_tokens: int = 0  # of token_count
    windows: int = 1  # chunked embeddings: the windows the text ran as
    window_tokens: int = 0  # tokens run over all its windows (token_count for one window)


@dataclass(frozen=True)
class EmbedResult:
    pooled: np.ndarray | None  # (n, H), normalised if asked; None when not asked for
    texts: list[TextEmbedding]
    timings: Timings
    layers: tuple[int, ...]  # attention layers returned, in order
    heads: tuple[int, ...]  # attention heads returned (before averaging)
    prompt_name: str = ""  # the prompt prepended to every text ("" = none)
    chunked: bool = False  # the request ran as windows (chunking): each text says its windows


@dataclass(frozen=True)
class EmbedAdmission:
    """An embedding request past every check: its tokens and the maps (and so the graph) that
    will run them."""

    tokenized: Tokenized
    maps: MapsPlan = NO_MAPS


class EmbedTask:
    name: ClassVar[str] = "embed"

    def __init__(self, pipeline: Pipeline, maps_available: bool) -> None:
        self.pipeline = pipeline
        self.model = pipeline.manifest.model
        self.limits = pipeline.limits
        self.maps_available = maps_available

    async def embed(
        self, texts: list[str], options: EmbedOptions, deadline: float | None
    ) -> EmbedResult:
        if self.limits.chunking if options.chunking is None else options.chunking:
            return await self.embed_chunked(texts, options, deadline)
        admitted = await self.admit(texts, options)
        ran = await self.pipeline.run(
            admitted.tokenized, admitted.maps.purpose, options.token_embeddings, deadline
        )
        return self.finish(admitted, ran, options)

    async def admit(self, texts: list[str], options: EmbedOptions) -> EmbedAdmission:
        """Every refusal before any inference: dimensions, room and tokens (the pipeline's),
        the attention asked for, and a response larger than the transport may send."""
        self.check_dimensions(options.dimensions)
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, options.prompt_name)
        return self.admit_tokens(await self.pipeline.admit(texts, tokenizing), options)

    async def embed_chunked(
        self, texts: list[str], options: EmbedOptions, deadline: float | None
    ) -> EmbedResult:
        """Texts over the window (max_tokens) run as windows (windows.py), every window
        through the batcher like a text, and each text's window vectors are pooled into one.
        A text within one window runs exactly as without chunking."""
        self.check_dimensions(options.dimensions)
        window, overlap = self.window_of(options)
        asked = options.chunk_overlap is not None
        # Never below the window: a text that fits one window is never cut by chunking.
        document_tokens = max(self.limits.max_document_tokens, window)
        tokenizing = TokenizeOptions(
            options.truncation, options.max_tokens, options.prompt_name, document_tokens
        )
        documents = await self.pipeline.admit(texts, tokenizing)
        split = [windows.split(text, window, overlap, asked) for text in documents.texts]
        self.check_windows(split, options)
        pieces = [piece for text in split for piece in text.windows]
        admitted = self.admit_tokens(replace(documents, texts=pieces), options)
        ran = await self.pipeline.run(
            admitted.tokenized, admitted.maps.purpose, options.token_embeddings, deadline
        )
        results, at = [], 0
        for text in split:
            mine, at = ran.results[at : at + len(text.windows)], at + len(text.windows)
            results.append(mine[0] if len(mine) == 1 else pooled_result(text, mine))
        per_text = replace(admitted, tokenized=documents)
        result = self.finish(per_text, Ran(results, ran.timings), options)
        counted = [
            replace(embedding, windows=len(text.windows), window_tokens=text.tokens_run)
            for embedding, text in zip(result.texts, split, strict=True)
        ]
        return replace(result, texts=counted, chunked=True)

    def window_of(self, options: EmbedOptions) -> tuple[int, int]:
        """The request's window (its max_tokens) and overlap; an overlap it asked for that no
        window of that size allows is refused even when no text needs windows."""
        window = options.max_tokens or self.pipeline.default_max_tokens
        if options.chunk_overlap is None:
            return window, self.limits.chunk_overlap_tokens  # capped per text by split()
        room = window - self.pipeline.tokenizer.special_count
        if options.chunk_overlap > max_overlap(room):
            raise invalid(
                f"chunk_overlap {options.chunk_overlap} is too large for windows of {window} "
                f"tokens: at most {max_overlap(room)}, under half a window"
            )
        return window, options.chunk_overlap

    def check_windows(self, split: list[Windows], options: EmbedOptions) -> None:
        """A request's windows count as texts (max_texts_per_request; the queue's room is
        checked as they are queued): a long document costs what that many texts cost."""
        for index, text in enumerate(split):
            if len(text.windows) > 1 and (options.token_embeddings or options.attention):
                raise invalid(
                    f"text {index} runs as {len(text.windows)} windows: chunked embeddings "
                    "give one pooled vector, without per-token vectors or attention maps; "
                    "ask for those without chunking (truncated to max_tokens)"
                )
        windows = sum(len(text.windows) for text in split)
        limit = self.limits.max_texts_per_request
        if windows > limit:
            raise invalid(
                f"the texts run as {windows} windows, over the limit of {limit} texts per "
                "request (max_texts_per_request: each window counts as a text); send fewer "
                "or shorter texts, or larger windows (max_tokens)"
            )

    def admit_tokens(self, tokenized: Tokenized, options: EmbedOptions) -> EmbedAdmission:
        """The checks on a request's tokens: the attention asked for, the response's size."""
        maps = plan(self.model, self.maps_available, options.attention)
        check_attention_elements(self.limits, maps.square_elements(tokenized.texts))
        self.check_response_size(tokenized.texts, options, maps)
        return EmbedAdmission(tokenized, maps)

    def finish(self, admitted: EmbedAdmission, ran: Ran, options: EmbedOptions) -> EmbedResult:
        """The batcher's rows as the answer: pooled (Matryoshka, normalised), per text."""
        pooled = None
        if options.pooled:
            pooled = np.stack([result.pooled for result in ran.results])  # (n, H)
            if options.dimensions is not None:  # Matryoshka: the first D, then normalised
                pooled = pooled[:, : options.dimensions]
            normalize = self.model.normalize if options.normalize is None else options.normalize
            if normalize:
                pooled = normalize_rows(pooled)
        maps = admitted.maps
        embeddings = [
            text_embedding(text, result, maps)
            for text, result in zip(admitted.tokenized.texts, ran.results, strict=True)
        ]
        prompt = admitted.tokenized.prompt.name
        return EmbedResult(pooled, embeddings, ran.timings, maps.layers, maps.heads, prompt)

    def check_dimensions(self, dimensions: int | None) -> None:
        check_dimensions(self.model, dimensions)

    def check_response_size(
        self, encoded: list[EncodedText], options: EmbedOptions, maps: MapsPlan
    ) -> None:
        hidden = self.model.hidden_size
        floats = maps.square_elements(encoded)
        for text in encoded:
            floats += (options.dimensions or hidden) if options.pooled else 0
            floats += text.length * hidden if options.token_embeddings else 0
        # The floats, plus a generous allowance for framing, shapes and the per-text results.
        size = floats * options.float_bytes + 1024 + 64 * len(encoded)
        advice = "send fewer texts, ask for pooled vectors only, fewer attention maps, or float16"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)


def check_dimensions(model: ModelSpec, dimensions: int | None) -> None:
    """Matryoshka: the first `dimensions` of a vector, 1 up to the model's size."""
    hidden = model.hidden_size
    if dimensions is not None and not 1 <= dimensions <= hidden:
        raise invalid(f"dimensions must be in 1..{hidden} (the model's size), got {dimensions}")


def text_embedding(text: EncodedText, result: ItemResult, maps: MapsPlan) -> TextEmbedding:
    """One text's answer: its token vectors and the attention maps asked for."""
    attentions = None
    if maps.layers and result.attentions is not None:
        attentions = select_maps(result.attentions, maps)
    return TextEmbedding(
        result.token_embeddings,
        attentions,
        text.length,
        text.truncated,
        text.prompt_tokens,
        window_tokens=text.length,
    )


def pooled_result(text: Windows, ran: list[ItemResult]) -> ItemResult:
    """One text's windows as one result: their vectors pooled (windows.pool)."""
    vector = windows.pool(text, np.stack([result.pooled for result in ran]))  # (H,)
    queue_s = max(result.queue_s for result in ran)
    return ItemResult(vector, None, None, queue_s, ran[0].batch)
