"""The Open Inference Protocol (KServe v2 gRPC) over the same pipeline: a thin adapter.

Triton's clients, perf_analyzer and KServe speak it. This module only translates: a
`ModelInferRequest`'s `text` input and parameters into the embed task's texts and
`EmbedOptions` (of the model the request names, found in the registry), the result into an
`embedding` output with each text's `token_count` (INT32) and `truncated` (BOOL), failures
into gRPC status codes (through the same call envelope as `attnserve.v1`), and keeps the
counts `ModelStatistics` reports, per model. The protocol's shapes and names are in
`proto/attnserve/oip/inference.proto`.
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.protobuf.message import Message

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.calls import Context, Front, GrpcCall, deadline_of, parse
from attnserve.service.server.embed import EmbedResult, EmbedTask
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.models import Registry, ServedModel
from attnserve.service.server.options import EmbedOptions, ScoreOptions, Truncation
from attnserve.service.server.score import RerankResult, ScoreTask

PROTOCOL = "oip"
SERVICE_NAME = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
VERSION = "1"
INPUT, OUTPUT = "text", "embedding"
# Per text: the tokens the model saw (special tokens included) and whether the text was cut.
TOKEN_COUNT, TRUNCATED = "token_count", "truncated"
EMBED_OUTPUTS = (OUTPUT, TOKEN_COUNT, TRUNCATED)
TRUNCATIONS = {"end": Truncation.END, "start": Truncation.START, "none": Truncation.NONE}


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)

    def message(self) -> oip.StatisticDuration:
        return oip.StatisticDuration(count=self.count, ns=self.ns)


@dataclass
class Statistics:
    """What ModelStatistics reports: cumulative, since the server started."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    tokenize: Duration = field(default_factory=Duration)
    inference: Duration = field(default_factory=Duration)
    output: Duration = field(default_factory=Duration)
    texts: int = 0
    batches: int = 0
    last_ms: int = 0

    def succeeded(
        self, seconds: float, result: EmbedResult | RerankResult, texts: int, output_s: float
    ) -> None:
        self.success.add(seconds)
        self.queue.add(result.timings.queue_s)
        self.tokenize.add(result.timings.tokenize_s)
        self.inference.add(result.timings.inference_s)
        self.output.add(output_s)
        self.texts += texts
        self.batches += result.timings.batches
        self.last_ms = int(time.time() * 1000)


def bytes_elements(raw: bytes) -> list[bytes]:
    """A raw BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise invalid("raw_input_contents: a BYTES element's length is cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise invalid("raw_input_contents: a BYTES element runs past the end of its data")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def texts_of(request: oip.ModelInferRequest) -> list[str]:
    """The `text` input's strings, from typed or raw contents."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
        names = [tensor.name for tensor in request.inputs]
        raise invalid(f"expected one input named {INPUT!r} (BYTES), got {names}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise invalid(f"input {INPUT!r} must be BYTES, got {tensor.datatype or 'no datatype'}")
    shape = list(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise invalid(f"input {INPUT!r} must have shape [N] or [N, 1], got {shape}")
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise invalid("raw_input_contents must hold exactly one entry per input")
        if tensor.contents.ByteSize():  # the protocol allows one or the other, not both
            raise invalid(f"input {INPUT!r} has both contents and raw_input_contents")
        elements = bytes_elements(request.raw_input_contents[0])
    else:
        elements = list(tensor.contents.bytes_contents)
    if len(elements) != shape[0]:
        raise invalid(f"input {INPUT!r} has shape {shape} but {len(elements)} elements")
    try:
        return [element.decode("utf-8") for element in elements]
    except UnicodeDecodeError:
        raise invalid(f"input {INPUT!r}: an element is not valid UTF-8") from None


def options_of(parameters: Mapping[str, oip.InferParameter]) -> EmbedOptions:
    """normalize (bool), truncate (bool, or "end" / "start" / "none"), dimensions (int),
    chunking (bool), chunk_overlap (int)."""
    normalize = truncation = dimensions = chunking = overlap = None
    for name, value in parameters.items():
        kind = value.WhichOneof("parameter_choice")
        if name == "normalize":
            if kind != "bool_param":
                raise invalid("parameter 'normalize' must be a bool")
            normalize = value.bool_param
        elif name == "truncate":
            if kind == "bool_param":
                truncation = Truncation.END if value.bool_param else Truncation.NONE
            elif kind == "string_param" and value.string_param in TRUNCATIONS:
                truncation = TRUNCATIONS[value.string_param]
            else:
                raise invalid("parameter 'truncate' must be a bool or one of end, start, none")
        elif name == "dimensions":
            if kind not in ("int64_param", "uint64_param"):
                raise invalid("parameter 'dimensions' must be an integer")
            dimensions = int(getattr(value, kind))
        elif name == "chunking":
            if kind != "bool_param":
                raise invalid("parameter 'chunking' must be a bool")
            chunking = value.bool_param
        elif name == "chunk_overlap":
            if kind not in ("int64_param", "uint64_param") or getattr(value, kind) < 0:
                raise invalid("parameter 'chunk_overlap' must be a non-negative integer")
            overlap = int(getattr(value, kind))
    return EmbedOptions(
        normalize=normalize,
        truncation=truncation or Truncation.END,
        dimensions=dimensions,
        chunking=chunking,
        chunk_overlap=overlap,
    )


class InferenceService:
    """`inference.GRPCInferenceService`: the served models by name, `text` in, `embedding` out."""

    def __init__(self, models: Registry, front: Front) -> None:
        self.models = models
        self.front = front
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
            if scores(model):
                return reranker_metadata(model)
            hidden = model.manifest.model.hidden_size
            tensor = oip.ModelMetadataResponse.TensorMetadata
            return oip.ModelMetadataResponse(
                name=model.name,
                versions=[VERSION],
                platform="onnxruntime_onnx",
                # As Triton says it: [batch] + the config's dims (perf_analyzer relies on it).
                inputs=[tensor(name=INPUT, datatype="BYTES", shape=[-1, 1])],
                outputs=[
                    tensor(name=OUTPUT, datatype="FP32", shape=[-1, hidden]),
                    tensor(name=TOKEN_COUNT, datatype="INT32", shape=[-1]),
                    tensor(name=TRUNCATED, datatype="BOOL", shape=[-1]),
                ],
            )

    async def ModelConfig(self, data: bytes, context: Context) -> oip.ModelConfigResponse:
        async with self.call("ModelConfig", context):
            request = parse(oip.ModelConfigRequest, data)
            model = self.find(request.name, request.version)
            if scores(model):
                return oip.ModelConfigResponse(config=reranker_config(model))
            hidden = model.manifest.model.hidden_size
            config = oip.ModelConfig(
                name=model.name,
                platform="onnxruntime_onnx",
                backend="onnxruntime",
                # The batch dimension: texts per request.
                max_batch_size=model.limits.max_texts_per_request,
                input=[oip.ModelInput(name=INPUT, data_type=oip.TYPE_STRING, dims=[1])],
                output=[
                    oip.ModelOutput(name=OUTPUT, data_type=oip.TYPE_FP32, dims=[hidden]),
                    # Scalars per text: [batch] alone, as Triton writes it (reshape to []).
                    oip.ModelOutput(
                        name=TOKEN_COUNT,
                        data_type=oip.TYPE_INT32,
                        dims=[1],
                        reshape=oip.ModelTensorReshape(shape=[]),
                    ),
                    oip.ModelOutput(
                        name=TRUNCATED,
                        data_type=oip.TYPE_BOOL,
                        dims=[1],
                        reshape=oip.ModelTensorReshape(shape=[]),
                    ),
                ],
                dynamic_batching=oip.ModelDynamicBatching(),
            )
            return oip.ModelConfigResponse(config=config)

    async def ModelStatistics(self, data: bytes, context: Context) -> oip.ModelStatisticsResponse:
        async with self.call("ModelStatistics", context):
            request = parse(oip.ModelStatisticsRequest, data)
            if request.name:
                models = [self.find(request.name, request.version)]
            else:
                models = list(self.models)
            entries = [self.statistics_of(model.name) for model in models]
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

    def statistics_of(self, name: str) -> oip.ModelStatistics:
        stats = self.statistics[name]
        return oip.ModelStatistics(
            name=name,
            version=VERSION,
            last_inference=stats.last_ms,
            inference_count=stats.texts,
            execution_count=stats.batches,
            inference_stats=oip.InferStatistics(
                success=stats.success.message(),
                fail=stats.fail.message(),
                queue=stats.queue.message(),
                compute_input=stats.tokenize.message(),
                compute_infer=stats.inference.message(),
                compute_output=stats.output.message(),
            ),
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
                if scores(model):  # a reranker: query + documents in, scores out
                    ranked = await rerank(model, request, deadline_of(context))
                    response = rerank_response(request, model.name, ranked)
                    succeeded = True
                    finished = time.perf_counter()
                    documents = len(ranked.results)
                    self.statistics[stats_name].succeeded(finished - started, ranked, documents, 0)
                    return response
                names = outputs_of(request)
                texts = texts_of(request)
                options = options_of(request.parameters)
                task = model.task(EmbedTask)
                result = await task.embed(texts, options, deadline_of(context))
                answer_started = time.perf_counter()
                response = self.response(request, model.name, result, names)
                succeeded = True
                finished = time.perf_counter()
                self.statistics[stats_name].succeeded(
                    finished - started, result, len(texts), finished - answer_started
                )
                return response
        finally:
            if not succeeded:
                self.statistics[stats_name].fail.add(time.perf_counter() - started)

    @staticmethod
    def response(
        request: oip.ModelInferRequest, model: str, result: EmbedResult, names: list[str]
    ) -> oip.ModelInferResponse:
        """The outputs asked for, in the order asked (raw little-endian contents)."""
        assert result.pooled is not None
        arrays = {
            OUTPUT: ("FP32", np.ascontiguousarray(result.pooled, dtype="<f4")),
            TOKEN_COUNT: ("INT32", np.array([t.token_count for t in result.texts], dtype="<i4")),
            TRUNCATED: ("BOOL", np.array([t.truncated for t in result.texts], dtype=np.bool_)),
        }
        tensor = oip.ModelInferResponse.InferOutputTensor
        outputs, contents = [], []
        for name in names:
            datatype, values = arrays[name]
            outputs.append(tensor(name=name, datatype=datatype, shape=list(values.shape)))
            contents.append(values.tobytes())  # BOOL: one byte per element, as Triton sends it
        return oip.ModelInferResponse(
            model_name=model,
            model_version=VERSION,
            id=request.id,
            outputs=outputs,
            raw_output_contents=contents,
        )


def outputs_of(request: oip.ModelInferRequest) -> list[str]:
    """The outputs to send: those the request names, in its order, or (none named) all of
    them, embedding first, as Triton answers a request that names none."""
    names = [requested.name for requested in request.outputs]
    for name in names:
        if name not in EMBED_OUTPUTS:
            raise invalid(f"unknown output {name!r}: the outputs are {', '.join(EMBED_OUTPUTS)}")
    if len(set(names)) != len(names):
        raise invalid(f"outputs must not repeat: {names}")
    return names or list(EMBED_OUTPUTS)


# --- a reranker: a BYTES `query` [1] and BYTES `documents` [N] in, FP32 `scores` [N] out -----

QUERY, DOCUMENTS, SCORES = "query", "documents", "scores"


def scores(model: ServedModel) -> bool:
    """Whether the model is a cross-encoder (OIP serves its rerank)."""
    return isinstance(model.by_name.get(ScoreTask.name), ScoreTask)


def bytes_input(request: oip.ModelInferRequest, name: str) -> list[str]:
    """One BYTES input's strings, by name, from typed or raw contents."""
    position = next((i for i, t in enumerate(request.inputs) if t.name == name), None)
    if position is None:
        raise invalid(f"expected BYTES inputs {QUERY!r} and {DOCUMENTS!r}, no {name!r} given")
    tensor = request.inputs[position]
    if tensor.datatype != "BYTES":
        raise invalid(f"input {name!r} must be BYTES, got {tensor.datatype or 'no datatype'}")
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise invalid("raw_input_contents must hold exactly one entry per input")
        elements = bytes_elements(request.raw_input_contents[position])
    else:
        elements = list(tensor.contents.bytes_contents)
    expected = 1
    for size in tensor.shape:
        expected *= size
    if len(elements) != expected:
        raise invalid(f"input {name!r} has shape {list(tensor.shape)} but {len(elements)} elements")
    try:
        return [element.decode("utf-8") for element in elements]
    except UnicodeDecodeError:
        raise invalid(f"input {name!r}: an element is not valid UTF-8") from None


async def rerank(
    model: ServedModel, request: oip.ModelInferRequest, deadline: float | None
) -> RerankResult:
    names = sorted(tensor.name for tensor in request.inputs)
    if names != sorted((QUERY, DOCUMENTS)):
        raise invalid(f"expected BYTES inputs {QUERY!r} and {DOCUMENTS!r}, got {names}")
    for requested in request.outputs:
        if requested.name != SCORES:
            raise invalid(f"unknown output {requested.name!r}: only {SCORES!r}")
    queries = bytes_input(request, QUERY)
    if len(queries) != 1:
        raise invalid(f"input {QUERY!r} must hold one query, got {len(queries)}")
    raw = False
    truncation = Truncation.END
    for name, value in request.parameters.items():
        kind = value.WhichOneof("parameter_choice")
        if name == "raw_scores" and kind == "bool_param":
            raw = value.bool_param
        elif name == "truncate" and kind == "bool_param":
            truncation = Truncation.END if value.bool_param else Truncation.NONE
        else:
            raise invalid(f"parameter {name!r}: a reranker takes raw_scores and truncate (bools)")
    options = ScoreOptions(truncation=truncation, raw_scores=raw)
    documents = bytes_input(request, DOCUMENTS)
    return await model.task(ScoreTask).rerank(queries[0], documents, options, deadline)


def rerank_response(
    request: oip.ModelInferRequest, model: str, result: RerankResult
) -> oip.ModelInferResponse:
    """The scores in document order (a tensor, not a ranking)."""
    values = np.empty(len(result.results), dtype="<f4")
    for ranked in result.results:
        values[ranked.index] = ranked.score
    output = oip.ModelInferResponse.InferOutputTensor(
        name=SCORES, datatype="FP32", shape=[len(values)]
    )
    return oip.ModelInferResponse(
        model_name=model, model_version=VERSION, id=request.id, outputs=[output],
        raw_output_contents=[values.tobytes()],
    )  # fmt: skip


def reranker_metadata(model: ServedModel) -> oip.ModelMetadataResponse:
    tensor = oip.ModelMetadataResponse.TensorMetadata
    return oip.ModelMetadataResponse(
        name=model.name,
        versions=[VERSION],
        platform="onnxruntime_onnx",
        inputs=[
            tensor(name=QUERY, datatype="BYTES", shape=[1]),
            tensor(name=DOCUMENTS, datatype="BYTES", shape=[-1]),
        ],
        outputs=[tensor(name=SCORES, datatype="FP32", shape=[-1])],
    )


def reranker_config(model: ServedModel) -> oip.ModelConfig:
    return oip.ModelConfig(
        name=model.name,
        platform="onnxruntime_onnx",
        backend="onnxruntime",
        max_batch_size=0,  # the documents are the batch, inside one request
        input=[
            oip.ModelInput(name=QUERY, data_type=oip.TYPE_STRING, dims=[1]),
            oip.ModelInput(name=DOCUMENTS, data_type=oip.TYPE_STRING, dims=[-1]),
        ],
        output=[oip.ModelOutput(name=SCORES, data_type=oip.TYPE_FP32, dims=[-1])],
    )


def method_handlers(service: InferenceService) -> dict[str, grpc.RpcMethodHandler]:
    """The protocol's methods, taking raw bytes (parsed inside the call's envelope)."""
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
