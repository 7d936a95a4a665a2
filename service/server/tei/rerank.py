"""tei.v1's `Rerank` service: TEI's Rerank (one query, many texts) <-> the score task, a thin
cell; and RerankStream, where the client streams one query-text pair per message and gets one
ranking when it closes (TEI reads `raw_scores` and `return_text` from the first message only).
A stream's pairs may differ in query and truncation: each such group is reranked as one request,
all at once, and the ranks merged. A stream may carry at most `max_documents_per_request` pairs,
as a Rerank request may.

Answers are TEI's `Rank`s, best first: the text's index, its score (the head's sigmoid, or the
logit with `raw_scores`), its text with `return_text`. The call goes to the first served
re-ranker (one-label head); none served is FAILED_PRECONDITION, as TEI answers a re-rank call to
a model of another type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.score import RankedDocument, RerankResult, ScoreTask
from attnserve.service.server.tei.messages import (
    PROTOCOL,
    is_reranker,
    metadata,
    model_offering,
    truncation,
)
from attnserve.service.server.timings import Timings
from attnserve.tei import tei_pb2 as pb


def ranks(result: RerankResult, texts: list[str], return_text: bool) -> list[pb.Rank]:
    """The task's ranking (best first) as TEI's `Rank`s; `text` set only when asked for."""
    return [
        pb.Rank(index=ranked.index, score=ranked.score, text=texts[ranked.index])
        if return_text
        else pb.Rank(index=ranked.index, score=ranked.score)
        for ranked in result.results
    ]


class RerankCell:
    """`Rerank` and `RerankStream` of `tei.v1.Rerank`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Rerank": grpc.unary_unary_rpc_method_handler(
                self.Rerank, response_serializer=pb.RerankResponse.SerializeToString
            ),
            "RerankStream": grpc.stream_unary_rpc_method_handler(
                self.RerankStream, response_serializer=pb.RerankResponse.SerializeToString
            ),
        }

    def reranker(self) -> ServedModel:
        return model_offering(self.models, ScoreTask, "a re-ranker", is_reranker)

    async def Rerank(self, data: bytes, context: Context) -> pb.RerankResponse:
        async with GrpcCall(self.front, PROTOCOL, "Rerank", context):
            started = time.perf_counter()
            request = parse(pb.RerankRequest, data)
            options = ScoreOptions(
                truncation=truncation(request.truncate, request.truncation_direction),
                raw_scores=request.raw_scores,
            )
            texts = list(request.texts)
            task = self.reranker().task(ScoreTask, "rerank")
            result = await task.rerank(request.query, texts, options, deadline_of(context))
            chars = len(request.query) * len(texts) + sum(len(text) for text in texts)
            return pb.RerankResponse(
                ranks=ranks(result, texts, request.return_text),
                metadata=metadata(chars, result.tokens, result.timings, started),
            )

    async def RerankStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> pb.RerankResponse:
        async with GrpcCall(self.front, PROTOCOL, "RerankStream", context):
            started = time.perf_counter()
            model = self.reranker()  # the model's type first, as TEI checks it
            limit = model.limits.max_documents_per_request
            pairs: list[pb.RerankStreamRequest] = []
            async for data in requests:
                pairs.append(parse(pb.RerankStreamRequest, data))
                if len(pairs) > limit:
                    raise invalid(
                        f"the stream has more than {limit} texts: at most {limit} per stream "
                        "(max_documents_per_request)"
                    )
            if not pairs:
                raise invalid("the stream has no texts: send one RerankStreamRequest per text")
            first = pairs[0]
            groups: dict[tuple[str, bool, int], list[int]] = {}
            for index, pair in enumerate(pairs):
                key = (pair.query, pair.truncate, pair.truncation_direction)
                groups.setdefault(key, []).append(index)
            task = model.task(ScoreTask, "rerank")
            deadline = deadline_of(context)

            async def rerank(key: tuple[str, bool, int], members: list[int]) -> RerankResult:
                query, truncate, direction = key
                options = ScoreOptions(truncation(truncate, direction), raw_scores=first.raw_scores)
                texts = [pairs[i].text for i in members]
                return await task.rerank(query, texts, options, deadline)

            results = await asyncio.gather(*(rerank(*group) for group in groups.items()))
            ranked = [
                RankedDocument(members[r.index], r.score, r.token_count, r.truncated)
                for members, result in zip(groups.values(), results, strict=True)
                for r in result.results
            ]
            ranked.sort(key=lambda r: (-r.score, r.index))
            merged = RerankResult(ranked, sum(r.tokens for r in results), joined(results))
            texts = [pair.text for pair in pairs]
            chars = sum(len(pair.query) + len(pair.text) for pair in pairs)
            return pb.RerankResponse(
                ranks=ranks(merged, texts, first.return_text),
                metadata=metadata(chars, merged.tokens, merged.timings, started),
            )


def joined(results: list[RerankResult]) -> Timings:
    """Requests that ran at once: the longest wait, the stages' work summed."""
    return Timings(
        queue_s=max(r.timings.queue_s for r in results),
        tokenize_s=sum(r.timings.tokenize_s for r in results),
        inference_s=sum(r.timings.inference_s for r in results),
        batches=sum(r.timings.batches for r in results),
    )
