"""The request path without the transport: validate, tokenise, batch, post-process.

Each protocol adapter (the gRPC servicer) turns its messages into `EmbedOptions` and the results
back; everything a request means lives here, so every call shape shares one implementation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from attnserve.service.artifact import GraphPurpose, Manifest
from attnserve.service.server.batcher import Batcher, BatchStats, ItemResult
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.finite import refuse_non_finite
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.options import AttentionRequest, EmbedOptions, Truncation
from attnserve.service.server.prompts import NO_PROMPT, Prompt, PromptBook
from attnserve.service.server.settings import Settings
from attnserve.service.server.tokenizer import EncodedText, TextTokenizer
from attnserve.service.server.tracing import Tracer

INLINE_TOKENIZE_CHARS = 20_000


@dataclass(frozen=True)
class TextEmbedding:
    token_embeddings: np.ndarray | None  # (n, H)
    attentions: np.ndarray | None  # (layers, heads or 1, n, n)
    token_count: int
    truncated: bool
    prompt_tokens: int = 0  # of token_count


@dataclass(frozen=True)
class Timings:
    queue_s: float
    tokenize_s: float
    inference_s: float  # summed over the model batches that carried the request's texts
    batches: int = 1  # how many model batches that was


@dataclass(frozen=True)
class EmbedResult:
    pooled: np.ndarray | None  # (n, H), normalised if asked; None when not asked for
    texts: list[TextEmbedding]
    timings: Timings
    layers: tuple[int, ...]  # attention layers returned, in order
    heads: tuple[int, ...]  # attention heads returned (before averaging)
    prompt_name: str = ""  # the prompt prepended to every text ("" = none)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        tokenizer: TextTokenizer,
        batcher: Batcher,
        metrics: Metrics,
        tracer: Tracer,
        maps_available: bool,
    ) -> None:
        self.tracer = tracer
        self.settings = settings
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.batcher = batcher
        self.metrics = metrics
        self.maps_available = maps_available
        self.prompts = PromptBook(manifest.model.prompts, manifest.model.default_prompt_name)
        # A request without max_tokens gets the manifest's default, within what the server allows.
        self.default_max_tokens = min(manifest.tokenizer.default_max_tokens, tokenizer.max_tokens)

    def check_texts(self, texts: list[str]) -> None:
        if not texts:
            raise invalid("the request has no texts")
        limit = self.settings.max_texts_per_request
        if len(texts) > limit:
            raise invalid(f"{len(texts)} texts, over the limit of {limit} per request")
        for index, text in enumerate(texts):
            if not text:
                raise invalid(f"text {index} is empty")
            if len(text) > self.settings.max_chars_per_text:
                raise invalid(
                    f"text {index} has {len(text)} characters, over the limit of "
                    f"{self.settings.max_chars_per_text}"
                )

    def resolve_attention(
        self, request: AttentionRequest
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if not self.maps_available:
            raise invalid("this artifact has no attention-maps graph")
        model = self.manifest.model
        layers = request.layers or tuple(range(model.num_layers))
        heads = request.heads or tuple(range(model.num_heads))
        for kind, chosen, count in (
            ("layer", layers, model.num_layers),
            ("head", heads, model.num_heads),
        ):
            bad = [i for i in chosen if not 0 <= i < count]
            if bad:
                raise invalid(
                    f"{kind} {bad[0]} is out of range: the model has {count} {kind}s "
                    f"(0..{count - 1})"
                )
            if len(set(chosen)) != len(chosen):
                raise invalid(f"{kind}s must not repeat: {list(chosen)}")
        return layers, heads

    def check_attention_size(self, encoded: list[EncodedText], layers: int, heads: int) -> None:
        elements = sum(layers * heads * text.length**2 for text in encoded)
        limit = self.settings.max_attention_elements
        if elements > limit:
            raise invalid(
                f"the attention maps asked for hold {elements} elements, over the limit of "
                f"{limit} per response (max_attention_elements); select fewer layers or heads, "
                "average the heads, or send fewer or shorter texts"
            )

    def check_dimensions(self, dimensions: int | None) -> None:
        hidden = self.manifest.model.hidden_size
        if dimensions is not None and not 1 <= dimensions <= hidden:
            raise invalid(f"dimensions must be in 1..{hidden} (the model's size), got {dimensions}")

    def check_response_size(
        self, encoded: list[EncodedText], options: EmbedOptions, layers: int, heads: int
    ) -> None:
        """Refuse, before any inference, a response larger than the transport may send: gRPC
        would fail it on the way out, after the work was done."""
        hidden = self.manifest.model.hidden_size
        floats = 0
        for text in encoded:
            floats += (options.dimensions or hidden) if options.pooled else 0
            floats += text.length * hidden if options.token_embeddings else 0
            floats += layers * heads * text.length**2
        # The floats, plus a generous allowance for framing, shapes and the per-text results.
        size = floats * options.float_bytes + 1024 + 64 * len(encoded)
        limit = self.settings.max_send_message_bytes
        if size > limit:
            raise ServiceError(
                Code.RESOURCE_EXHAUSTED,
                f"the response would take about {size} bytes, over the server's limit of "
                f"{limit} (max_send_message_bytes); send fewer texts, ask for pooled vectors "
                "only, fewer attention maps, or float16",
            )

    def tokenize(
        self,
        texts: list[str],
        truncation: Truncation,
        max_tokens: int | None,
        offsets: bool,
        prompt: Prompt = NO_PROMPT,
    ) -> list[EncodedText]:
        self.check_texts(texts)
        return self.tokenizer.encode(
            texts, truncation, max_tokens or self.default_max_tokens, offsets, prompt.text
        )

    async def tokenize_off_loop(
        self,
        texts: list[str],
        truncation: Truncation,
        max_tokens: int | None,
        offsets: bool = False,
        prompt: Prompt = NO_PROMPT,
    ) -> list[EncodedText]:
        """Small requests tokenise inline (a thread hop costs more than they do); large ones
        in a worker thread, so one big request never stalls every other call's I/O."""
        if sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:
            return self.tokenize(texts, truncation, max_tokens, offsets, prompt)
        return await asyncio.to_thread(
            self.tokenize, texts, truncation, max_tokens, offsets, prompt
        )

    async def embed(
        self, texts: list[str], options: EmbedOptions, deadline: float | None
    ) -> EmbedResult:
        started = time.perf_counter()
        # Admission first: under overload a refusal must cost next to nothing, so a full queue
        # says so before any tokenising (`submit` checks again, for the texts' actual slots).
        self.check_dimensions(options.dimensions)
        prompt = self.prompts.resolve(options.prompt_name)
        self.batcher.check_room(len(texts))
        encoded = await self.tokenize_off_loop(
            texts, options.truncation, options.max_tokens, prompt=prompt
        )
        tokenized = time.perf_counter()
        self.metrics.tokenize_seconds.observe(tokenized - started)

        layers: tuple[int, ...] = ()
        heads: tuple[int, ...] = ()
        shown_heads = 0
        if options.attention is not None:
            layers, heads = self.resolve_attention(options.attention)
            shown_heads = 1 if options.attention.average_heads else len(heads)
            self.check_attention_size(encoded, len(layers), shown_heads)
        self.check_response_size(encoded, options, len(layers), shown_heads)
        if deadline is not None and time.monotonic() >= deadline:
            raise ServiceError(Code.DEADLINE_EXCEEDED, "deadline passed before inference")

        graph: GraphPurpose = "fast" if options.attention is None else "maps"
        future = self.batcher.submit(encoded, graph, options.token_embeddings, deadline)
        try:
            results = await future
        except BaseException:
            future.cancel()  # the client left: its texts not yet run are dropped
            raise
        refuse_non_finite(results, self.metrics)  # never a NaN/Inf vector (server/finite.py)
        self.metrics.input_tokens.inc(sum(text.length for text in encoded))
        truncated = sum(text.truncated for text in encoded)
        if truncated:
            self.metrics.truncated.inc(truncated)
        normalize = (
            self.manifest.model.normalize if options.normalize is None else options.normalize
        )
        pooled = None
        if options.pooled:
            pooled = np.stack([result.pooled for result in results])  # (n, H)
            if options.dimensions is not None:  # Matryoshka: the first D, then normalised
                pooled = pooled[:, : options.dimensions]
            if normalize:
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                pooled = pooled / np.maximum(norms, 1e-12)
        embeddings = [
            self.postprocess(text, result, options, layers, heads)
            for text, result in zip(encoded, results, strict=True)
        ]
        queue_s = max(result.queue_s for result in results)
        self.metrics.queue_seconds.observe(queue_s)
        batches = {id(result.batch): result.batch for result in results}  # a split request
        inference_s = sum(batch.inference_s for batch in batches.values())
        if self.tracer.enabled:
            self.trace_stages(started, tokenized, encoded, list(batches.values()))
        timings = Timings(queue_s, tokenized - started, inference_s, len(batches))
        return EmbedResult(pooled, embeddings, timings, layers, heads, prompt.name)

    def trace_stages(
        self,
        started: float,
        tokenized: float,
        encoded: list[EncodedText],
        batches: list[BatchStats],
    ) -> None:
        tokens = sum(text.length for text in encoded)
        self.tracer.stage("tokenize", started, tokenized, texts=len(encoded), tokens=tokens)
        first = min(batch.started_at for batch in batches)
        self.tracer.stage("queue", tokenized, first)
        for batch in batches:
            end = batch.started_at + batch.inference_s
            self.tracer.stage(
                "inference", batch.started_at, end, graph=batch.graph, batch_texts=batch.texts
            )

    @staticmethod
    def postprocess(
        text: EncodedText,
        result: ItemResult,
        options: EmbedOptions,
        layers: tuple[int, ...],
        heads: tuple[int, ...],
    ) -> TextEmbedding:
        attentions = None
        if options.attention is not None and result.attentions is not None:
            attentions = result.attentions[np.ix_(layers, heads)]  # (l, h, n, n)
            if options.attention.average_heads:
                attentions = attentions.mean(axis=1, keepdims=True)
        return TextEmbedding(
            result.token_embeddings, attentions, text.length, text.truncated, text.prompt_tokens
        )
