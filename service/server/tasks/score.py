"""The `score` task: a cross-encoder's answers, rerank (one query against many documents) and
classify (texts or text pairs against the head's labels).

One operation a served model offers over its pipeline, as `embed` is: pairs are admitted like
texts (queue room, then the tokenizer's pair template), run one pair per row through the same
batcher (a request of 1000 documents is split across model batches and merged back in order), and
only `finish` is the task's own: the head's activation over the logits (sigmoid for one logit, as
CrossEncoder and text-embeddings-inference; softmax over labels, or sigmoid per label where the
head is multi-label), raw logits on request, then sorting and top-n / top-k. On request each
pair's exact attention maps come back too (the maps graph in place of the fast one, the layers
and heads selected as `embed` selects them: `attention_maps.py`), with where each text of the
pair lies among its tokens, so a client can read where the query's tokens look in the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from tokenizers import Tokenizer

from attnserve.service.artifact import HeadSpec
from attnserve.service.heads import activate
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import ScoreOptions, TokenizeOptions
from attnserve.service.server.pipeline import Pipeline, Ran, Tokenized
from attnserve.service.server.routed import route_task
from attnserve.service.server.tasks.attention_maps import (
    MapsPlan,
    check_attention_elements,
    check_response_bytes,
    plan,
    select_maps,
)
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText

Span = tuple[int, int]  # token positions [start, end)


@dataclass(frozen=True)
class PairMaps:
    """A pair's attention maps, and where its texts lie among its tokens."""

    maps: np.ndarray  # (layers, heads or 1, n, n) over the pair's n tokens
    segments: tuple[Span, ...]  # the first text's tokens, then the second's (special excluded)
    tokens: list[str]  # the pair's n tokens as the model saw them


@dataclass(frozen=True)
class RankedDocument:
    index: int  # the document's position in the request
    score: float
    token_count: int  # of the pair, special tokens included (after truncation)
    truncated: bool
    attention: PairMaps | None = None  # when asked for


@dataclass(frozen=True)
class RerankResult:
    results: list[RankedDocument]  # best first (top_n of them)
    tokens: int  # every pair's tokens, for usage
    timings: Timings
    layers: tuple[int, ...] = ()  # attention layers returned, in order
    heads: tuple[int, ...] = ()  # attention heads returned (before averaging)


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Classified:
    labels: list[LabelScore]  # best first (top_k of them)
    token_count: int
    truncated: bool
    attention: PairMaps | None = None  # when asked for


@dataclass(frozen=True)
class ClassifyResult:
    inputs: list[Classified]  # in request order
    tokens: int
    timings: Timings
    layers: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scored:
    """What `ScoreTask.run` answered for a request's pairs, in order."""

    tokenized: Tokenized
    ran: Ran
    scores: np.ndarray  # (n, L), activated unless raw
    maps: list[PairMaps | None] = field(default_factory=list)  # per pair, when asked for
    layers: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()

    def pair_maps(self, index: int) -> PairMaps | None:
        return self.maps[index] if self.maps else None


def segments_of(text: EncodedText) -> tuple[Span, ...]:
    """Where each text of the row lies among its tokens: the tokens the template did not add,
    in order, split by each text's count. (The `tokenizers` library's sequence ids are not
    kept by `post_process` for the first text, and a template may give its [SEP] a text's
    type id: neither can say this.) A text of no tokens is the empty span where it would be."""
    own = [i for i, special in enumerate(text.encoding.special_tokens_mask) if not special]
    spans: list[Span] = []
    taken = 0
    for count in text.segment_tokens:
        positions = own[taken : taken + count]
        after = spans[-1][1] if spans else 0
        spans.append((positions[0], positions[-1] + 1) if positions else (after, after))
        taken += count
    return tuple(spans)


def token_strings(tokenizer: Tokenizer, text: EncodedText) -> list[str]:
    """The row's tokens as vocabulary strings (pairs are encoded without offsets, which leaves
    the encoding's own token strings empty)."""
    return [tokenizer.id_to_token(int(i)) or "" for i in text.ids]


class ScoreTask:
    name: ClassVar[str] = "score"  # rerank and classify

    def __init__(self, pipeline: Pipeline, head: HeadSpec, maps_available: bool) -> None:
        self.pipeline = pipeline
        self.head = head
        self.limits = pipeline.limits
        self.maps_available = maps_available

    async def run(
        self, pairs: list[tuple[str, str | None]], options: ScoreOptions, deadline: float | None
    ) -> Scored:
        """The pairs through the fast graph, or the maps graph when their maps are asked for
        (refused, before any inference, past the attention and response-size limits)."""
        planned = plan(self.pipeline.manifest.model, self.maps_available, options.attention)
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, "")
        tokenized = await self.pipeline.admit_pairs(pairs, tokenizing)
        if planned.layers:
            self.check_maps_size(tokenized.texts, planned)
        ran = await self.pipeline.run(tokenized, planned.purpose, False, deadline)
        logits = np.stack([result.pooled for result in ran.results])  # (n, L)
        scores = activate(logits, self.head.activation, options.raw_scores)
        if not planned.layers:
            return Scored(tokenized, ran, scores)
        maps: list[PairMaps | None] = []
        for text, result in zip(tokenized.texts, ran.results, strict=True):
            assert result.attentions is not None  # the maps graph ran
            chosen = select_maps(result.attentions, planned)
            tokens = token_strings(self.pipeline.pairs.tokenizer, text)
            maps.append(PairMaps(chosen, segments_of(text), tokens))
        return Scored(tokenized, ran, scores, maps, planned.layers, planned.heads)

    def check_maps_size(self, encoded: list[EncodedText], planned: MapsPlan) -> None:
        floats = planned.square_elements(encoded)
        check_attention_elements(self.limits, floats, fewer="send fewer or shorter pairs")
        tokens = sum(text.length for text in encoded)
        # float32 maps, each pair's token strings (generously), framing and per-pair fields.
        size = 4 * floats + 16 * tokens + 1024 + 128 * len(encoded)
        advice = "send fewer or shorter pairs, select fewer layers or heads, or average the heads"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)

    def label(self, task: Literal["rerank", "classify"]) -> None:
        """The call's `task` label, refined from "score" (`ServedModel.task`) to what ran."""
        route_task(task, refines=self.name)

    async def rerank(
        self, query: str, documents: list[str], options: ScoreOptions, deadline: float | None
    ) -> RerankResult:
        """Every document scored against the query; results sorted by score, best first."""
        self.label("rerank")
        if not self.head.reranker:
            raise invalid(
                f"rerank needs a one-score model; this one classifies into "
                f"{len(self.head.labels)} labels ({', '.join(self.head.labels)}): use classify"
            )
        if not documents:
            raise invalid("the request has no documents")
        limit = self.limits.max_documents_per_request
        if len(documents) > limit:
            raise invalid(f"{len(documents)} documents: at most {limit} documents per request")
        if options.top_n is not None and options.top_n < 1:
            raise invalid(f"top_n must be at least 1, got {options.top_n}")
        self.limits.check_text("the query", query)
        for index, document in enumerate(documents):
            self.limits.check_text(f"document {index}", document)
        pairs: list[tuple[str, str | None]] = [(query, document) for document in documents]
        scored = await self.run(pairs, options, deadline)
        scores, texts = scored.scores, scored.tokenized.texts
        order = sorted(range(len(documents)), key=lambda i: -float(scores[i, 0]))  # stable ties
        ranked = [
            RankedDocument(
                i, float(scores[i, 0]), texts[i].length, texts[i].truncated, scored.pair_maps(i)
            )
            for i in order[: options.top_n]
        ]
        tokens, timings = scored.tokenized.tokens, scored.ran.timings
        return RerankResult(ranked, tokens, timings, scored.layers, scored.heads)

    async def classify(
        self,
        inputs: list[str] | list[tuple[str, str]],
        options: ScoreOptions,
        deadline: float | None,
    ) -> ClassifyResult:
        """Each text (the single-text template) or text pair against the head's labels."""
        self.label("classify")
        if not inputs:
            raise invalid("the request has no inputs")
        limit = self.limits.max_texts_per_request
        if len(inputs) > limit:
            raise invalid(f"{len(inputs)} inputs: at most {limit} per request")
        if options.top_k is not None and options.top_k < 1:
            raise invalid(f"top_k must be at least 1, got {options.top_k}")
        pairs: list[tuple[str, str | None]] = [
            (item, None) if isinstance(item, str) else item for item in inputs
        ]
        for index, (first, second) in enumerate(pairs):
            self.limits.check_text(f"input {index}", first)
            if second is not None:
                self.limits.check_text(f"input {index}'s second text", second)
        scored = await self.run(pairs, options, deadline)
        results = []
        rows = zip(scored.scores, scored.tokenized.texts, strict=True)
        for index, (row, text) in enumerate(rows):
            order = sorted(range(len(self.head.labels)), key=lambda j: -float(row[j]))
            labels = [LabelScore(self.head.labels[j], float(row[j])) for j in order]
            top = labels[: options.top_k]
            results.append(Classified(top, text.length, text.truncated, scored.pair_maps(index)))
        tokens, timings = scored.tokenized.tokens, scored.ran.timings
        return ClassifyResult(results, tokens, timings, scored.layers, scored.heads)
