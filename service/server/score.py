"""The `score` task: a cross-encoder's answers, rerank (one query against many documents) and
classify (texts or text pairs against the head's labels).

One operation a served model offers over its pipeline, as `embed` is: pairs are admitted like
texts (queue room, then the tokenizer's pair template), run one pair per row through the same
batcher (a request of 1000 documents is split across model batches and merged back in order), and
only `finish` is the task's own: the head's activation over the logits (sigmoid for one logit, as
CrossEncoder and text-embeddings-inference; softmax over labels, or sigmoid per label where the
head is multi-label), raw logits on request, then sorting and top-n / top-k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from attnserve.service.artifact import HeadSpec
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import ScoreOptions, TokenizeOptions
from attnserve.service.server.pipeline import Pipeline, Ran, Timings, Tokenized


@dataclass(frozen=True)
class RankedDocument:
    index: int  # the document's position in the request
    score: float
    token_count: int  # of the pair, special tokens included (after truncation)
    truncated: bool


@dataclass(frozen=True)
class RerankResult:
    results: list[RankedDocument]  # best first (top_n of them)
    tokens: int  # every pair's tokens, for usage
    timings: Timings


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Classified:
    labels: list[LabelScore]  # best first (top_k of them)
    token_count: int
    truncated: bool


@dataclass(frozen=True)
class ClassifyResult:
    inputs: list[Classified]  # in request order
    tokens: int
    timings: Timings


def activate(logits: np.ndarray, head: HeadSpec, raw: bool) -> np.ndarray:
    """(n, L) logits -> the scores a client sees."""
    if raw or head.activation == "identity":
        return logits
    if head.activation == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-logits.astype(np.float64))), dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)


class ScoreTask:
    name: ClassVar[str] = "score"  # rerank and classify

    def __init__(self, pipeline: Pipeline, head: HeadSpec) -> None:
        self.pipeline = pipeline
        self.head = head
        self.limits = pipeline.limits

    def check_text(self, what: str, text: str) -> None:
        if not text:
            raise invalid(f"{what} is empty")
        if len(text) > self.limits.max_chars_per_text:
            raise invalid(
                f"{what} has {len(text)} characters, over the limit of "
                f"{self.limits.max_chars_per_text}"
            )

    async def run(
        self, pairs: list[tuple[str, str | None]], options: ScoreOptions, deadline: float | None
    ) -> tuple[Tokenized, Ran, np.ndarray]:
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, "")
        tokenized = await self.pipeline.admit_pairs(pairs, tokenizing)
        ran = await self.pipeline.run(tokenized, "fast", False, deadline)
        logits = np.stack([result.pooled for result in ran.results])  # (n, L)
        return tokenized, ran, activate(logits, self.head, options.raw_scores)

    async def rerank(
        self, query: str, documents: list[str], options: ScoreOptions, deadline: float | None
    ) -> RerankResult:
        """Every document scored against the query; results sorted by score, best first."""
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
        self.check_text("the query", query)
        for index, document in enumerate(documents):
            self.check_text(f"document {index}", document)
        pairs: list[tuple[str, str | None]] = [(query, document) for document in documents]
        tokenized, ran, scores = await self.run(pairs, options, deadline)
        order = sorted(range(len(documents)), key=lambda i: -float(scores[i, 0]))  # stable ties
        texts = tokenized.texts
        ranked = [
            RankedDocument(i, float(scores[i, 0]), texts[i].length, texts[i].truncated)
            for i in order[: options.top_n]
        ]
        return RerankResult(ranked, tokenized.tokens, ran.timings)

    async def classify(
        self,
        inputs: list[str] | list[tuple[str, str]],
        options: ScoreOptions,
        deadline: float | None,
    ) -> ClassifyResult:
        """Each text (the single-text template) or text pair against the head's labels."""
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
            self.check_text(f"input {index}", first)
            if second is not None:
                self.check_text(f"input {index}'s second text", second)
        tokenized, ran, scores = await self.run(pairs, options, deadline)
        results = []
        for row, text in zip(scores, tokenized.texts, strict=True):
            order = sorted(range(len(self.head.labels)), key=lambda j: -float(row[j]))
            labels = [LabelScore(self.head.labels[j], float(row[j])) for j in order]
            results.append(Classified(labels[: options.top_k], text.length, text.truncated))
        return ClassifyResult(results, tokenized.tokens, ran.timings)
