"""The Open Inference Protocol (KServe v2 gRPC) over the served models: a thin adapter.

Triton's clients, perf_analyzer and KServe speak it. The server-wide calls (live, ready,
metadata, the repository index, statistics) are answered here; a model's metadata, config and
inference by the module of its kind (`embed.py`: `text` in, `embedding` out; `score.py`: `query`
and `documents` in, `scores` out), picked once per served model from the tasks it offers. Every
call runs in the same gRPC envelope as attnserve.v1 (protocol label "oip"); `ModelStatistics`
reports the counts kept here, per model. The protocol's shapes and names are in
`proto/attnserve/oip/inference.proto`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.oip.embed import EmbedKind
from attnserve.service.server.oip.score import ScoreKind
from attnserve.service.server.oip.sparse import SparseKind
from attnserve.service.server.oip.statistics import Statistics
from attnserve.service.server.oip.tensors import PROTOCOL, SERVICE_NAME, VERSION
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.timings import Timings

__all__ = ["PROTOCOL", "SERVICE_NAME", "InferenceService", "handlers"]


class Answered(Protocol):
    @property
    def timings(self) -> Timings: ...


class ModelKind(Protocol):
    """What OIP says and does for one kind of model."""

    task: type[Any]

    def metadata(self, model: ServedModel) -> oip.ModelMetadataResponse: ...

    def config(self, model: ServedModel) -> oip.ModelConfig: ...

    async def infer(
        self, model: ServedModel, request: oip.ModelInferRequest, deadline: float | None
    ) -> tuple[oip.ModelInferResponse, Answered, int, float]: ...


# Tried in order: the first kind whose task a model offers speaks for it (a bge-m3 model, which
# embeds too, is the embed kind's); the embed kind answers for any other (its inference asks for
# the embed task, which refuses naming what is offered).
KINDS: tuple[ModelKind, ...] = (ScoreKind(), EmbedKind(), SparseKind())


def kind_of(model: ServedModel) -> ModelKind:
    return next((kind for kind in KINDS if model.offers(kind.task)), KINDS[1])


class InferenceService:
    """`inference.GRPCInferenceService` over the served models, by name."""

    def __init__(self, models: Registry, front: Front) -> None:
        self.models = models
        self.front = front
        self.kinds = {model.name: kind_of(model) for model in models}
        self.statistics: defaultdict[str, Statistics] = defaultdict(Statistics)

    def call(self, method: str, context: Context) -> GrpcCall:
        return GrpcCall(self.front, PROTOCOL, method, context)

    def serves(self, name: str, version: str) -> bool:
        return self.models.serves(name) and version in ("", VERSION)

    def find(self, name: str, version: str) -> ServedModel:
        """The model a request names (NOT_FOUND, from the registry, for one not served)."""
        model = self.models.find(name)
        if version not in ("", VERSION):
            raise ServiceError(
                Code.NOT_FOUND, f"model {name!r} has no version {version!r}: it has {VERSION}"
            )
        return model

    async def ServerLive(self, data: bytes, context: Context) -> oip.ServerLiveResponse:
        async with self.call("ServerLive", context):
            parse(oip.ServerLiveRequest, data)
            return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, data: bytes, context: Context) -> oip.ServerReadyResponse:
        async with self.call("ServerReady", context):
            parse(oip.ServerReadyRequest, data)
            return oip.ServerReadyResponse(ready=self.front.ready)

    async def ModelReady(self, data: bytes, context: Context) -> oip.ModelReadyResponse:
        async with self.call("ModelReady", context):
            request = parse(oip.ModelReadyRequest, data)
            # Per model: a model is ready once warm (the server, once all are), until the drain.
            ready = (
                self.serves(request.name, request.version) and self.models.find(request.name).ready
            )
            return oip.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, data: bytes, context: Context) -> oip.ServerMetadataResponse:
        async with self.call("ServerMetadata", context):
            parse(oip.ServerMetadataRequest, data)
            return oip.ServerMetadataResponse(
                name="attnserve",
                version=self.front.version,
                extensions=["model_configuration", "statistics"],
            )

    async def ModelMetadata(self, data: bytes, context: Context) -> oip.ModelMetadataResponse:
        async with self.call("ModelMetadata", context):
            request = parse(oip.ModelMetadataRequest, data)
            model = self.find(request.name, request.version)
            return self.kinds[model.name].metadata(model)

    async def ModelConfig(self, data: bytes, context: Context) -> oip.ModelConfigResponse:
        async with self.call("ModelConfig", context):
            request = parse(oip.ModelConfigRequest, data)
            model = self.find(request.name, request.version)
            return oip.ModelConfigResponse(config=self.kinds[model.name].config(model))

    async def ModelStatistics(self, data: bytes, context: Context) -> oip.ModelStatisticsResponse:
        async with self.call("ModelStatistics", context):
            request = parse(oip.ModelStatisticsRequest, data)
            if request.name:
                models = [self.find(request.name, request.version)]
            else:
                models = list(self.models)
            entries = [self.statistics[model.name].message(model.name, VERSION) for model in models]
            return oip.ModelStatisticsResponse(model_stats=entries)

    async def RepositoryIndex(self, data: bytes, context: Context) -> oip.RepositoryIndexResponse:
        async with self.call("RepositoryIndex", context):
            request = parse(oip.RepositoryIndexRequest, data)
            entry = oip.RepositoryIndexResponse.ModelIndex
            return oip.RepositoryIndexResponse(
                models=[
                    entry(
                        name=model.name,
                        version=VERSION,
                        state="READY" if model.ready else "UNAVAILABLE",
                        reason="" if model.ready else "warming up or draining",
                    )
                    for model in self.models
                    if model.ready or not request.ready
                ]
            )

    async def ModelInfer(self, data: bytes, context: Context) -> oip.ModelInferResponse:
        started = time.perf_counter()
        succeeded = False
        # A request for a model not served counts against the default model, as it did when
        # there was one (Triton counts failures per model; an unknown name has none of its own).
        stats_name = self.models.default.name
        try:
            async with self.call("ModelInfer", context):
                request = parse(oip.ModelInferRequest, data)
                model = self.find(request.model_name, request.model_version)
                stats_name = model.name
                kind = self.kinds[model.name]
                response, result, texts, output_s = await kind.infer(
                    model, request, deadline_of(context)
                )
                succeeded = True
                seconds = time.perf_counter() - started
                self.statistics[stats_name].succeeded(seconds, result.timings, texts, output_s)
                return response
        finally:
            if not succeeded:
                self.statistics[stats_name].fail.add(time.perf_counter() - started)


def handlers(
    models: Registry, front: Front, settings: Settings
) -> dict[str, grpc.RpcMethodHandler]:
    """The protocol's methods, taking raw bytes (parsed inside the call's envelope)."""
    service = InferenceService(models, front)
    answers: dict[str, type[Message]] = {
        "ServerLive": oip.ServerLiveResponse,
        "ServerReady": oip.ServerReadyResponse,
        "ModelReady": oip.ModelReadyResponse,
        "ServerMetadata": oip.ServerMetadataResponse,
        "ModelMetadata": oip.ModelMetadataResponse,
        "ModelInfer": oip.ModelInferResponse,
        "ModelConfig": oip.ModelConfigResponse,
        "ModelStatistics": oip.ModelStatisticsResponse,
        "RepositoryIndex": oip.RepositoryIndexResponse,
    }
    return {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(service, name), response_serializer=answer.SerializeToString
        )
        for name, answer in answers.items()
    }
