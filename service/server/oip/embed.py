"""An embedder over the Open Inference Protocol: BYTES `text` [N] (or [N, 1]) in; FP32
`embedding` [N, H], INT32 `token_count` [N] and BOOL `truncated` [N] out.

One model kind of the OIP service (`service.py` picks a kind per served model, once): its
metadata, its config (as Triton writes them, which perf_analyzer relies on) and its inference
over the embed task. Parameters: normalize (bool), truncate (bool, or "end" / "start" / "none"),
dimensions (int), chunking (bool), chunk_overlap (int).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.errors import invalid
from attnserve.service.server.oip.tensors import (
    INPUT,
    VERSION,
    infer_response,
    texts_of,
    truncation_parameter,
)
from attnserve.service.server.options import EmbedOptions, Truncation
from attnserve.service.server.registry import ServedModel
from attnserve.service.server.tasks.embed import EmbedResult, EmbedTask

OUTPUT = "embedding"
# Per text: the tokens the model saw (special tokens included) and whether the text was cut.
TOKEN_COUNT, TRUNCATED = "token_count", "truncated"
EMBED_OUTPUTS = (OUTPUT, TOKEN_COUNT, TRUNCATED)


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
            truncation = truncation_parameter(value)
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


def response_of(
    request: oip.ModelInferRequest, model: str, result: EmbedResult, names: list[str]
) -> oip.ModelInferResponse:
    """The outputs asked for, in the order asked."""
    assert result.pooled is not None
    arrays = {
        OUTPUT: ("FP32", np.ascontiguousarray(result.pooled, dtype="<f4")),
        TOKEN_COUNT: ("INT32", np.array([t.token_count for t in result.texts], dtype="<i4")),
        TRUNCATED: ("BOOL", np.array([t.truncated for t in result.texts], dtype=np.bool_)),
    }
    return infer_response(request, model, [(name, *arrays[name]) for name in names])


class EmbedKind:
    """What OIP says and does for a model that embeds."""

    task = EmbedTask

    def metadata(self, model: ServedModel) -> oip.ModelMetadataResponse:
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

    def config(self, model: ServedModel) -> oip.ModelConfig:
        hidden = model.manifest.model.hidden_size
        scalar = oip.ModelTensorReshape(shape=[])  # [batch] alone, as Triton writes it
        return oip.ModelConfig(
            name=model.name,
            platform="onnxruntime_onnx",
            backend="onnxruntime",
            max_batch_size=model.limits.max_texts_per_request,  # the batch: texts per request
            input=[oip.ModelInput(name=INPUT, data_type=oip.TYPE_STRING, dims=[1])],
            output=[
                oip.ModelOutput(name=OUTPUT, data_type=oip.TYPE_FP32, dims=[hidden]),
                oip.ModelOutput(
                    name=TOKEN_COUNT, data_type=oip.TYPE_INT32, dims=[1], reshape=scalar
                ),
                oip.ModelOutput(name=TRUNCATED, data_type=oip.TYPE_BOOL, dims=[1], reshape=scalar),
            ],
            dynamic_batching=oip.ModelDynamicBatching(),
        )

    async def infer(
        self, model: ServedModel, request: oip.ModelInferRequest, deadline: float | None
    ) -> tuple[oip.ModelInferResponse, EmbedResult, int, float]:
        """The response, the task's result, the texts it carried and the seconds spent writing
        the response (ModelStatistics' compute_output)."""
        names = outputs_of(request)
        texts = texts_of(request)
        options = options_of(request.parameters)
        result = await model.task(EmbedTask).embed(texts, options, deadline)
        started = time.perf_counter()
        response = response_of(request, model.name, result, names)
        return response, result, len(texts), time.perf_counter() - started
