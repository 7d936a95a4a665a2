"""attnserve.v1's `Info`: what a served model is, its limits, tasks and versions, a thin cell.

Every model's answer is built once at assembly (it is fixed for the server's life) and handed out
by name; a request naming no model gets the default model's.
"""

from __future__ import annotations

import grpc
import onnxruntime

from attnserve.service.server.calls import Context, Front, GrpcCall, parse
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.settings import Settings
from attnserve.service.server.v1.messages import PROTOCOL, limits_message
from attnserve.v1 import embedder_pb2 as pb


def build_info(served: ServedModel, version: str, models: list[str]) -> pb.InfoResponse:
    """One model's `Info` answer: what it is, its limits and tasks, and every model the server
    serves (`models`, the default first); fixed for the server's life."""
    model, engine = served.manifest.model, served.engine
    return pb.InfoResponse(
        model_name=model.name,
        model_source=model.source,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        pooling=model.pooling,
        normalize=model.normalize,
        default_max_tokens=served.pipeline.default_max_tokens,
        limits=limits_message(served.limits),
        precision=engine.precision,
        execution_provider=engine.provider,
        attention_maps=engine.supports_maps(),
        artifact_sha256=served.manifest.artifact_hash,
        server_version=version,
        onnxruntime_version=onnxruntime.__version__,
        prompts=model.prompts,
        default_prompt_name=model.default_prompt_name or "",
        family=model.family,
        causal=model.causal,
        model=served.name,
        models=models,
        tasks=served.task_names,
        labels=served.manifest.head.labels if served.manifest.head is not None else (),
        chunking=served.limits.chunking,
        chunk_overlap=served.limits.chunk_overlap_tokens,
    )


class InfoCell:
    """`Info` of `attnserve.v1.Embedder`."""

    def __init__(self, models: Registry, front: Front, settings: Settings) -> None:
        self.models = models
        self.front = front
        self.infos = {
            model.name: build_info(model, front.version, models.names) for model in models
        }

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "Info": grpc.unary_unary_rpc_method_handler(
                self.Info, response_serializer=pb.InfoResponse.SerializeToString
            ),
        }

    async def Info(self, data: bytes, context: Context) -> pb.InfoResponse:
        async with GrpcCall(self.front, PROTOCOL, "Info", context):
            request = parse(pb.InfoRequest, data)
            return self.infos[self.models.route(request.model).name]
