"""A sparse model (SPLADE, bge-m3's lexical weights) over the Open Inference Protocol: BYTES
`text` [N] (or [N, 1]) in; the texts' sparse vectors out as CSR, the form sparse tensors take
where a tensor must be dense: INT64 `sparse_offsets` [N + 1] (text i's terms are
`offsets[i]:offsets[i + 1]`), INT64 `sparse_indices` [terms] (ascending per text) and FP32
`sparse_values` [terms]. Parameters: top_k (int), min_weight (float), truncate (as `embed`'s).
A bge-m3 model, which also embeds, is the embed kind's; its sparse vectors are attnserve.v1's.
"""

from __future__ import annotations

import time

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
from attnserve.service.server.options import Truncation
from attnserve.service.server.registry import ServedModel
from attnserve.service.server.tasks.sparse import SparseEmbedTask, SparseOptions, SparseResult

OFFSETS, INDICES, VALUES = "sparse_offsets", "sparse_indices", "sparse_values"
SPARSE_OUTPUTS = (OFFSETS, INDICES, VALUES)


def sparse_options(request: oip.ModelInferRequest) -> SparseOptions:
    top_k, min_weight, truncation = None, 0.0, Truncation.END
    for name, value in request.parameters.items():
        kind = value.WhichOneof("parameter_choice")
        if name == "top_k":
            if kind not in ("int64_param", "uint64_param") or getattr(value, kind) < 1:
                raise invalid("parameter 'top_k' must be a positive integer")
            top_k = int(getattr(value, kind))
        elif name == "min_weight":
            if kind not in ("double_param", "int64_param", "uint64_param"):
                raise invalid("parameter 'min_weight' must be a number")
            min_weight = float(getattr(value, kind))
        elif name == "truncate":
            truncation = truncation_parameter(value)
        else:
            raise invalid(f"unknown parameter {name!r}: top_k, min_weight, truncate")
    return SparseOptions(truncation, None, top_k, min_weight)


def sparse_response(
    request: oip.ModelInferRequest, model: str, result: SparseResult
) -> oip.ModelInferResponse:
    names = [requested.name for requested in request.outputs] or list(SPARSE_OUTPUTS)
    for name in names:
        if name not in SPARSE_OUTPUTS:
            raise invalid(f"unknown output {name!r}: the outputs are {', '.join(SPARSE_OUTPUTS)}")
    counts = [len(text.vector.indices) for text in result.texts]
    arrays = {
        OFFSETS: ("INT64", np.concatenate([[0], np.cumsum(counts)]).astype("<i8")),
        INDICES: ("INT64", np.concatenate([t.vector.indices for t in result.texts]).astype("<i8")),
        VALUES: ("FP32", np.concatenate([t.vector.values for t in result.texts]).astype("<f4")),
    }
    return infer_response(request, model, [(name, *arrays[name]) for name in names])


class SparseKind:
    """What OIP says and does for a model whose answer is sparse vectors."""

    task = SparseEmbedTask

    def metadata(self, model: ServedModel) -> oip.ModelMetadataResponse:
        tensor = oip.ModelMetadataResponse.TensorMetadata
        return oip.ModelMetadataResponse(
            name=model.name,
            versions=[VERSION],
            platform="onnxruntime_onnx",
            inputs=[tensor(name=INPUT, datatype="BYTES", shape=[-1, 1])],
            outputs=[
                tensor(name=OFFSETS, datatype="INT64", shape=[-1]),
                tensor(name=INDICES, datatype="INT64", shape=[-1]),
                tensor(name=VALUES, datatype="FP32", shape=[-1]),
            ],
        )

    def config(self, model: ServedModel) -> oip.ModelConfig:
        return oip.ModelConfig(
            name=model.name,
            platform="onnxruntime_onnx",
            backend="onnxruntime",
            max_batch_size=0,  # the texts' terms are one flat list: no batch dimension
            input=[oip.ModelInput(name=INPUT, data_type=oip.TYPE_STRING, dims=[-1])],
            output=[
                oip.ModelOutput(name=OFFSETS, data_type=oip.TYPE_INT64, dims=[-1]),
                oip.ModelOutput(name=INDICES, data_type=oip.TYPE_INT64, dims=[-1]),
                oip.ModelOutput(name=VALUES, data_type=oip.TYPE_FP32, dims=[-1]),
            ],
        )

    async def infer(
        self, model: ServedModel, request: oip.ModelInferRequest, deadline: float | None
    ) -> tuple[oip.ModelInferResponse, SparseResult, int, float]:
        texts = texts_of(request)
        options = sparse_options(request)
        result = await model.task(SparseEmbedTask).embed_sparse(texts, options, deadline, False)
        started = time.perf_counter()
        response = sparse_response(request, model.name, result)
        return response, result, len(texts), time.perf_counter() - started
