"""One served model's request path, without the transport: the stages every task shares.

A task (`tasks/`: embed, score, late_chunking) is an operation over this path, not a copy of
it: the pipeline checks the texts against the model's `Limits`, resolves the prompt, admits a
request (queue room first, then tokenising), runs its texts through the batcher and reports the
timings; the task adds only what its answer means (which graph, which outputs, post-processing).
The protocol adapters translate wire messages into task calls and know nothing of this.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from attnserve.service.artifact import GraphPurpose, Manifest
from attnserve.service.server.batcher import Batcher, BatchStats, ItemResult
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.finite import refuse_non_finite
from attnserve.service.server.limits import Limits
from attnserve.service.server.metrics import ModelMetrics
from attnserve.service.server.options import TokenizeOptions, Truncation
from attnserve.service.server.pairs import PairTokenizer
from attnserve.service.server.prompts import NO_PROMPT, Prompt, PromptBook
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText, TextTokenizer
from attnserve.service.server.tracing import Tracer

INLINE_TOKENIZE_CHARS = 20_000


@dataclass(frozen=True)
class Tokenized:
    """A request's texts as tokens, with the prompt they carry and when tokenising ran."""

    texts: list[EncodedText]
    prompt: Prompt
    started: float = 0.0  # time.perf_counter() when the request was admitted
    finished: float = 0.0  # ... and when its texts were tokens

    @property
    def tokens(self) -> int:
        return sum(text.length for text in self.texts)


@dataclass(frozen=True)
class Ran:
    """What the batcher answered for a request's texts, in order, and what it took."""

    results: list[ItemResult]
    timings: Timings


class Pipeline:
    def __init__(
        self,
        manifest: Manifest,
        limits: Limits,
        tokenizer: TextTokenizer,
        batcher: Batcher,
        metrics: ModelMetrics,
        tracer: Tracer,
    ) -> None:
        self.manifest = manifest
        self.limits = limits
        self.tokenizer = tokenizer
        self.batcher = batcher
        self.metrics = metrics
        self.tracer = tracer
        self.pairs = PairTokenizer(tokenizer.tokenizer, tokenizer.max_tokens)
        self.prompts = PromptBook(manifest.model.prompts, manifest.model.default_prompt_name)
        # A request without max_tokens gets the manifest's default, within what the server allows.
        self.default_max_tokens = min(manifest.tokenizer.default_max_tokens, tokenizer.max_tokens)

    def check_count(self, texts: list[str]) -> None:
        """The request's own size, before the queue's room: retrying cannot fix this one."""
        if not texts:
            raise invalid("the request has no texts")
        limit = self.limits.max_texts_per_request
        if len(texts) > limit:
            raise invalid(f"{len(texts)} texts: at most {limit} texts per request")

    def check_texts(self, texts: list[str]) -> None:
        self.check_count(texts)
        for index, text in enumerate(texts):
            self.limits.check_text(f"text {index}", text)

    def encode(
        self,
        texts: list[str],
        truncation: Truncation,
        max_tokens: int | None,
        offsets: bool,
        prompt: Prompt = NO_PROMPT,
        document_tokens: int | None = None,
    ) -> list[EncodedText]:
        self.check_texts(texts)
        return self.tokenizer.encode(
            texts,
            truncation,
            max_tokens or self.default_max_tokens,
            offsets,
            prompt.text,
            document_tokens,
        )

    async def encode_off_loop(
        self, texts: list[str], options: TokenizeOptions, prompt: Prompt, offsets: bool
    ) -> list[EncodedText]:
        """Small requests tokenise inline (a thread hop costs more than they do); large ones
        in a worker thread, so one big request never stalls every other call's I/O."""
        args = (texts, options.truncation, options.max_tokens, offsets, prompt)
        if sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:
            return self.encode(*args, options.document_tokens)
        return await asyncio.to_thread(self.encode, *args, options.document_tokens)

    async def tokenize(
        self, texts: list[str], options: TokenizeOptions, offsets: bool = True
    ) -> Tokenized:
        """The tokens a request's texts would run as (the `Tokenize` call); with `offsets`
        (each token's place in its text), or without for counts only, which is cheaper."""
        prompt = self.prompts.resolve(options.prompt_name)
        encoded = await self.encode_off_loop(texts, options, prompt, offsets=offsets)
        return Tokenized(encoded, prompt)

    async def admit(
        self, texts: list[str], options: TokenizeOptions, offsets: bool = False
    ) -> Tokenized:
        """Queue room, then tokens. Under overload a refusal must cost next to nothing, so a
        full queue says so before any tokenising (`submit` checks again, for the texts' actual
        slots). `offsets`: the tokens' character offsets too (late chunking needs them)."""
        started = time.perf_counter()
        prompt = self.prompts.resolve(options.prompt_name)
        self.check_count(texts)
        self.batcher.check_room(len(texts))
        encoded = await self.encode_off_loop(texts, options, prompt, offsets)
        finished = time.perf_counter()
        self.metrics.tokenize_seconds.observe(finished - started)
        return Tokenized(encoded, prompt, started, finished)

    async def admit_pairs(
        self, pairs: list[tuple[str, str | None]], options: TokenizeOptions
    ) -> Tokenized:
        """`admit` for text pairs (a cross-encoder's rows): queue room, then each pair through
        the tokenizer's pair template. The task has checked the pairs' count and texts."""
        started = time.perf_counter()
        self.batcher.check_room(len(pairs))
        max_tokens = options.max_tokens or self.default_max_tokens
        args = (pairs, options.truncation, max_tokens)
        if sum(len(a) + len(b or "") for a, b in pairs) <= INLINE_TOKENIZE_CHARS:
            encoded = self.pairs.encode(*args)
        else:  # as encode_off_loop: a big request never stalls the event loop
            encoded = await asyncio.to_thread(self.pairs.encode, *args)
        finished = time.perf_counter()
        self.metrics.tokenize_seconds.observe(finished - started)
        return Tokenized(encoded, NO_PROMPT, started, finished)

    async def run(
        self,
        tokenized: Tokenized,
        purpose: GraphPurpose,
        token_embeddings: bool,
        deadline: float | None,
        extra: tuple[str, ...] = (),
    ) -> Ran:
        """The texts through the batcher on the graph of this `purpose`; their results, in
        order (`extra`: other graph outputs by name). A caller that leaves cancels its texts
        not yet run."""
        if deadline is not None and time.monotonic() >= deadline:
            raise ServiceError(Code.DEADLINE_EXCEEDED, "deadline passed before inference")
        encoded = tokenized.texts
        future = self.batcher.submit(encoded, purpose, token_embeddings, deadline, extra)
        try:
            results = await future
        except BaseException:
            future.cancel()  # the client left: its texts not yet run are dropped
            raise
        refuse_non_finite(results, self.metrics)  # never a NaN/Inf vector (server/finite.py)
        self.metrics.input_tokens.inc(tokenized.tokens)
        truncated = sum(text.truncated for text in encoded)
        if truncated:
            self.metrics.truncated.inc(truncated)
        queue_s = max(result.queue_s for result in results)
        self.metrics.queue_seconds.observe(queue_s)
        batches = {id(result.batch): result.batch for result in results}  # a split request
        inference_s = sum(batch.inference_s for batch in batches.values())
        if self.tracer.enabled:
            self.trace_stages(tokenized, list(batches.values()))
        tokenize_s = tokenized.finished - tokenized.started
        return Ran(results, Timings(queue_s, tokenize_s, inference_s, len(batches)))

    def trace_stages(self, tokenized: Tokenized, batches: list[BatchStats]) -> None:
        started, tokens_at = tokenized.started, tokenized.finished
        texts = len(tokenized.texts)
        self.tracer.stage("tokenize", started, tokens_at, texts=texts, tokens=tokenized.tokens)
        first = min(batch.started_at for batch in batches)
        self.tracer.stage("queue", tokens_at, first)
        for batch in batches:
            end = batch.started_at + batch.inference_s
            self.tracer.stage(
                "inference", batch.started_at, end, graph=batch.purpose, batch_texts=batch.texts
            )
