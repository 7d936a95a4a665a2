"""tei.v1's `Info` service: what TEI's Info says of a served model, a thin cell.

TEI's request names no model, so Info describes the default model (the first `--artifact`),
as its Tokenize and Decode tokenize with it. Each field read as TEI's router fills it:
`model_id` the checkpoint's name, `model_dtype` the precision served, `model_type` from the head
(one label: a re-ranker), `max_input_length` where a request is truncated or refused,
`max_client_batch_size` the texts (a re-ranker: documents) one request may carry. Built once at
assembly: it is fixed for the server's life.
"""

from __future__ import annotations

import grpc

from attnserve.service.server.calls import Context, Front, GrpcCall, parse
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.tei.messages import PROTOCOL
from attnserve.tei import tei_pb2 as pb

DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}  # TEI's spelling


def model_type(model: ServedModel) -> pb.ModelType:
    head = model.manifest.head
    if head is None:
        return pb.MODEL_TYPE_EMBEDDING
    return pb.MODEL_TYPE_RERANKER if head.reranker else pb.MODEL_TYPE_CLASSIFIER


def build_info(model: ServedModel, version: str, settings: Settings) -> pb.InfoResponse:
    limits = model.limits
    reranker = model_type(model) == pb.MODEL_TYPE_RERANKER
    return pb.InfoResponse(
        version=version,
        model_id=model.manifest.model.name,
        model_dtype=DTYPES.get(model.engine.precision, model.engine.precision),
        model_type=model_type(model),
        max_concurrent_requests=limits.max_queue_texts,
        max_input_length=model.pipeline.default_max_tokens,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_requests=settings.max_batch_texts,
        max_client_batch_size=(
            limits.max_documents_per_request if reranker else limits.max_texts_per_request
        ),
        tokenization_workers=1,  # the event loop's thread (large requests: a worker thread)
    )


class InfoCell:
    """`Info` of `tei.v1.Info`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.infos = {model.name: build_info(model, front.version, settings) for model in models}

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "Info": grpc.unary_unary_rpc_method_handler(
                self.Info, response_serializer=pb.InfoResponse.SerializeToString
            ),
        }

    async def Info(self, data: bytes, context: Context) -> pb.InfoResponse:
        async with GrpcCall(self.front, PROTOCOL, "Info", context):
            parse(pb.InfoRequest, data)
            return self.infos[self.models.route(None).name]
