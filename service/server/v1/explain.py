"""attnserve.v1's `Explain`: protobuf <-> the explain task, a thin cell.

What the request's fields ask for (texts or a query and documents) is the task's decision
(`ExplainTask.explain`); this cell only translates the answer into `ExplainResponse`.
"""

from __future__ import annotations

import time

import grpc
import numpy as np

from attnserve.service import wire
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.options import ExplainOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.explain import (
    ExplainedText,
    ExplainTask,
    RelevanceExplanation,
    SimilarityExplanation,
)
from attnserve.service.server.v1.messages import (
    PROTOCOL,
    TRUNCATIONS,
    enum_value,
    timings_message,
)
from attnserve.v1 import embedder_pb2 as pb


def float32(values: np.ndarray | None) -> pb.Tensor | None:
    return None if values is None else wire.encode(values, pb.DTYPE_FLOAT32)


def text_message(text: ExplainedText) -> pb.ExplainedText:
    tokens = [
        pb.Token(
            id=view.id, text=view.text, start=view.start, end=view.end,
            special=view.special, prompt=view.prompt,
        )
        for view in text.tokens
    ]  # fmt: skip
    return pb.ExplainedText(
        tokens=tokens,
        relevance=float32(text.relevance),
        truncated=text.truncated,
        prompt_tokens=text.prompt_tokens,
    )


def similarity_message(explained: SimilarityExplanation) -> pb.SimilarityExplanation:
    terms = explained.terms
    return pb.SimilarityExplanation(
        cells=float32(terms.cells),
        first_shares=float32(terms.first_shares),
        second_shares=float32(terms.second_shares),
        cosine=explained.cosine,
        cells_sum=terms.cosine,
        dimensions=explained.dimensions,
    )


class ExplainCell:
    """`Explain` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "Explain": grpc.unary_unary_rpc_method_handler(
                self.Explain, response_serializer=pb.ExplainResponse.SerializeToString
            ),
        }

    async def Explain(self, data: bytes, context: Context) -> pb.ExplainResponse:
        async with GrpcCall(self.front, PROTOCOL, "Explain", context):
            started = time.perf_counter()
            request = parse(pb.ExplainRequest, data)
            model = self.models.route(request.model)
            options = ExplainOptions(
                truncation=enum_value(TRUNCATIONS, request.truncation, "truncation"),
                max_tokens=request.max_tokens or None,
                dimensions=request.dimensions or None,
                prompt_name=request.prompt_name if request.HasField("prompt_name") else None,
                rollout=request.rollout,
            )
            task = model.task(ExplainTask)
            explained = await task.explain(
                list(request.texts),
                request.query,
                list(request.documents),
                options,
                deadline_of(context),
            )
            response = pb.ExplainResponse(
                request_id=request.request_id,
                model=model.manifest.model.name,
                timings=timings_message(explained.timings, started),
            )
            if isinstance(explained, SimilarityExplanation | RelevanceExplanation):
                response.pooling = model.manifest.model.pooling.value
                response.prompt_name = explained.prompt_name
            if isinstance(explained, SimilarityExplanation):
                response.texts.extend(
                    [text_message(explained.first), text_message(explained.second)]
                )
                response.similarity.CopyFrom(similarity_message(explained))
            elif isinstance(explained, RelevanceExplanation):
                response.texts.extend(text_message(text) for text in explained.texts)
            else:
                response.documents.extend(
                    pb.ExplainedDocument(
                        index=document.index,
                        score=document.score,
                        tokens=document.tokens,
                        relevance=float32(document.relevance),
                        token_count=document.token_count,
                        truncated=document.truncated,
                    )
                    for document in explained.documents
                )
            return response
