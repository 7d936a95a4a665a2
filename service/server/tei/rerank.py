"""tei.v1's `Rerank` service: TEI's Rerank (one query, many texts) <-> the score task, a thin
cell; RerankStream (the client streams one query-text pair per message, one answer at the end)
joins in step with the streams.

Answers are TEI's `Rank`s, best first: the text's index, its score (the head's sigmoid, or the
logit with `raw_scores`), its text with `return_text`. The call goes to the first served
re-ranker (one-label head); none served is FAILED_PRECONDITION, as TEI answers a re-rank call to
a model of another type.
"""

from __future__ import annotations

import time

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.score import RerankResult, ScoreTask
from attnserve.service.server.tei.messages import (
    PROTOCOL,
    is_reranker,
    metadata,
    model_offering,
    truncation,
)
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
    """`Rerank` of `tei.v1.Rerank`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.max_stream_pending = settings.max_stream_pending

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Rerank": grpc.unary_unary_rpc_method_handler(
                self.Rerank, response_serializer=pb.RerankResponse.SerializeToString
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
