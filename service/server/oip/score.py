"""A reranker over the Open Inference Protocol: BYTES `query` [1] and BYTES `documents` [N] in,
FP32 `scores` [N] out, in document order (a tensor, not a ranking).

One model kind of the OIP service (`service.py` picks a kind per served model, once): metadata,
config and inference over the score task's rerank. Parameters: raw_scores and truncate (bools).
"""

from __future__ import annotations

import numpy as np

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.errors import invalid
from attnserve.service.server.oip.tensors import VERSION, bytes_input, infer_response
from attnserve.service.server.options import ScoreOptions, Truncation
from attnserve.service.server.registry import ServedModel
from attnserve.service.server.tasks.score import RerankResult, ScoreTask

QUERY, DOCUMENTS, SCORES = "query", "documents", "scores"


def options_of(request: oip.ModelInferRequest) -> ScoreOptions:
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
    return ScoreOptions(truncation=truncation, raw_scores=raw)


def scores_response(
    request: oip.ModelInferRequest, model: str, result: RerankResult
) -> oip.ModelInferResponse:
    values = np.empty(len(result.results), dtype="<f4")
    for ranked in result.results:
        values[ranked.index] = ranked.score
    return infer_response(request, model, [(SCORES, "FP32", values)])


class ScoreKind:
    """What OIP says and does for a cross-encoder that reranks."""

    task = ScoreTask

    def metadata(self, model: ServedModel) -> oip.ModelMetadataResponse:
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

    def config(self, model: ServedModel) -> oip.ModelConfig:
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

    async def infer(
        self, model: ServedModel, request: oip.ModelInferRequest, deadline: float | None
    ) -> tuple[oip.ModelInferResponse, RerankResult, int, float]:
        names = sorted(tensor.name for tensor in request.inputs)
        if names != sorted((QUERY, DOCUMENTS)):
            raise invalid(f"expected BYTES inputs {QUERY!r} and {DOCUMENTS!r}, got {names}")
        for requested in request.outputs:
            if requested.name != SCORES:
                raise invalid(f"unknown output {requested.name!r}: only {SCORES!r}")
        queries = bytes_input(request, QUERY)
        if len(queries) != 1:
            raise invalid(f"input {QUERY!r} must hold one query, got {len(queries)}")
        options = options_of(request)
        documents = bytes_input(request, DOCUMENTS)
        task = model.task(ScoreTask, "rerank")
        result = await task.rerank(queries[0], documents, options, deadline)
        return scores_response(request, model.name, result), result, len(documents), 0.0
