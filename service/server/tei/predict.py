"""tei.v1's `Predict` service: TEI's Predict (one text) and PredictPair (one text or a pair)
<-> the score task's classify, a thin cell.

Each answer is every label's score, best first (softmax over the labels, sigmoid for a one-label
re-ranker or a multi-label head, the logits with `raw_scores`), as TEI's `Prediction`s. The
call goes to the first served cross-encoder; none served is FAILED_PRECONDITION, TEI's status
for a model of another type. PredictPair takes one or two texts, as TEI's does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import ScoreOptions
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.score import ScoreTask
from attnserve.service.server.tei.messages import PROTOCOL, metadata, model_offering, truncation
from attnserve.service.server.tei.streams import Streams
from attnserve.tei import tei_pb2 as pb

Inputs = list[str] | list[tuple[str, str]]


def pair_inputs(request: pb.PredictPairRequest) -> Inputs:
    """PredictPair's `inputs`: one text, or a text pair; anything else refused as TEI does."""
    texts = list(request.inputs)
    if len(texts) == 1:
        return texts
    if len(texts) == 2:
        return [(texts[0], texts[1])]
    raise invalid(f"`inputs` must have a single or two elements. Given: {len(texts)}")


class PredictCell:
    """`Predict` and `PredictPair` of `tei.v1.Predict`, each with its stream."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.streams = Streams(front, settings.max_stream_pending)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The cell's methods, taking raw bytes (parsed inside the envelope: `parse`)."""
        return {
            "Predict": grpc.unary_unary_rpc_method_handler(
                self.Predict, response_serializer=pb.PredictResponse.SerializeToString
            ),
            "PredictPair": grpc.unary_unary_rpc_method_handler(
                self.PredictPair, response_serializer=pb.PredictResponse.SerializeToString
            ),
            "PredictStream": grpc.stream_stream_rpc_method_handler(
                self.PredictStream, response_serializer=pb.PredictResponse.SerializeToString
            ),
            "PredictPairStream": grpc.stream_stream_rpc_method_handler(
                self.PredictPairStream, response_serializer=pb.PredictResponse.SerializeToString
            ),
        }

    async def Predict(self, data: bytes, context: Context) -> pb.PredictResponse:
        async with GrpcCall(self.front, PROTOCOL, "Predict", context):
            request = parse(pb.PredictRequest, data)
            return await self.predict([request.inputs], request, deadline_of(context))

    async def PredictPair(self, data: bytes, context: Context) -> pb.PredictResponse:
        async with GrpcCall(self.front, PROTOCOL, "PredictPair", context):
            request = parse(pb.PredictPairRequest, data)
            return await self.predict(pair_inputs(request), request, deadline_of(context))

    async def PredictStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.PredictResponse]:
        async def run(request: pb.PredictRequest) -> pb.PredictResponse:
            return await self.predict([request.inputs], request, deadline_of(context))

        stream = self.streams.answer("PredictStream", context, requests, pb.PredictRequest, run)
        async for response in stream:
            yield response

    async def PredictPairStream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.PredictResponse]:
        async def run(request: pb.PredictPairRequest) -> pb.PredictResponse:
            return await self.predict(pair_inputs(request), request, deadline_of(context))

        stream = self.streams.answer(
            "PredictPairStream", context, requests, pb.PredictPairRequest, run
        )
        async for response in stream:
            yield response

    async def predict(
        self,
        inputs: Inputs,
        request: pb.PredictRequest | pb.PredictPairRequest,
        deadline: float | None,
    ) -> pb.PredictResponse:
        """One Predict or PredictPair request, unary or streamed."""
        started = time.perf_counter()
        options = ScoreOptions(
            truncation=truncation(request.truncate, request.truncation_direction),
            raw_scores=request.raw_scores,
        )
        model = model_offering(self.models, ScoreTask, "a classifier or re-ranker")
        result = await model.task(ScoreTask, "classify").classify(inputs, options, deadline)
        (classified,) = result.inputs
        chars = sum(len(item) if isinstance(item, str) else len("".join(item)) for item in inputs)
        return pb.PredictResponse(
            predictions=[pb.Prediction(score=s.score, label=s.label) for s in classified.labels],
            metadata=metadata(chars, result.tokens, result.timings, started),
        )
