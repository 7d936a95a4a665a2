"""Rerank by MaxSim: a late-interaction model (ColBERT) answers the score task's rerank.

The query runs as a query (marker, [MASK] expansion), the documents as documents (their
marker, skiplist), through the multi-vector task's path, in one request's two batcher
submissions; each document's score is MaxSim: the sum over the query's vectors of the best dot
product with the document's (`service/multi_vector.py`). So every rerank cell (attnserve.v1
Rerank and RerankStream, OIP, Cohere's and TEI's routes) ranks with a ColBERT model as with a
cross-encoder. MaxSim has no activation: `raw_scores` changes nothing. Classify and attention
maps are refused by name.
"""

from __future__ import annotations

import asyncio

from attnserve.service import multi_vector
from attnserve.service.artifact import HeadSpec
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.tasks.multi_vector import MultiVectorOptions, MultiVectorTask
from attnserve.service.server.tasks.score import (
    ClassifyResult,
    RankedDocument,
    RerankResult,
    ScoreTask,
)
from attnserve.service.server.timings import Timings

# What Info and the other cells read of a scoring model's head: one relevance score per document.
MAXSIM_HEAD = HeadSpec(labels=("maxsim",), activation="identity")


class MaxSimScoreTask(ScoreTask):
    def __init__(self, vectors: MultiVectorTask) -> None:
        super().__init__(vectors.pipeline, MAXSIM_HEAD, maps_available=False)
        self.vectors = vectors

    async def rerank(
        self, query: str, documents: list[str], options: ScoreOptions, deadline: float | None
    ) -> RerankResult:
        self.label("rerank")
        if options.attention is not None:
            raise invalid("attention maps are not served for MaxSim rerank")
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
        spec = self.vectors.spec
        side = MultiVectorOptions(False, options.truncation, options.max_tokens)
        queried, found = await asyncio.gather(
            self.vectors.encode([query], MultiVectorOptions(True, options.truncation), deadline),
            self.vectors.encode(documents, side, deadline),
        )
        q_rows = queried.rows(spec, True)[0]
        q = queried.ran.results[0].outputs[spec.output][q_rows]  # (Q, D)
        scores = [
            multi_vector.maxsim(q, result.outputs[spec.output][rows])
            for result, rows in zip(found.ran.results, found.rows(spec, False), strict=True)
        ]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])  # stable ties
        texts = found.ready
        ranked = [
            RankedDocument(i, scores[i], texts[i].length, texts[i].truncated)
            for i in order[: options.top_n]
        ]
        a, b = queried.ran.timings, found.ran.timings
        timings = Timings(
            max(a.queue_s, b.queue_s), a.tokenize_s + b.tokenize_s,
            a.inference_s + b.inference_s, a.batches + b.batches,
        )  # fmt: skip
        return RerankResult(ranked, queried.tokens + found.tokens, timings)

    async def classify(
        self,
        inputs: list[str] | list[tuple[str, str]],
        options: ScoreOptions,
        deadline: float | None,
    ) -> ClassifyResult:
        self.label("classify")
        raise invalid("a late-interaction (MaxSim) model reranks; it has no labels to classify")
