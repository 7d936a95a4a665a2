"""tei.v1's kit: what every cell of TEI's gRPC API shares between its messages and the tasks.

TEI's API (`attnserve.tei`, TEI's own `tei.proto`, copied verbatim) is five services over one
model: a TEI server serves one. attnserve may serve several, so each call goes to the model that
answers it (`model_offering`: Embed to the first embedder, Rerank to the first re-ranker, Predict
to the first cross-encoder, the default first), and a call no served model answers is refused
with FAILED_PRECONDITION, the status TEI gives a call of the wrong model type. Here too: the
truncation TEI's two fields mean, the response `Metadata` (TEI's timings, in nanoseconds) and
the refusals whose status is TEI's own rather than the code's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.options import Truncation
from attnserve.service.server.registry import Registry, ServedModel, Task
from attnserve.service.server.timings import Timings
from attnserve.tei import tei_pb2 as pb

PROTOCOL = "tei.v1"  # the calls' `protocol` metric label
SERVICES = pb.DESCRIPTOR.services_by_name
INFO_SERVICE = SERVICES["Info"].full_name
EMBED_SERVICE = SERVICES["Embed"].full_name
PREDICT_SERVICE = SERVICES["Predict"].full_name
RERANK_SERVICE = SERVICES["Rerank"].full_name
TOKENIZE_SERVICE = SERVICES["Tokenize"].full_name


class TeiStatusError(ServiceError):
    """A refusal answered with TEI's status for it (`status.status_of` reads `grpc_status`);
    its `Code` is the nearest of the domain's, for anything that reads only codes."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(Code.INVALID_ARGUMENT, message)
        self.grpc_status = status


def truncation(truncate: bool, direction: int) -> Truncation:
    """TEI's `truncate` (false: an over-long input is refused) and `truncation_direction`
    (RIGHT keeps the start, LEFT keeps the end) as the tasks' one truncation."""
    if not truncate:
        return Truncation.NONE
    if direction == pb.TRUNCATION_DIRECTION_RIGHT:
        return Truncation.END
    if direction == pb.TRUNCATION_DIRECTION_LEFT:
        return Truncation.START
    raise invalid(f"truncation_direction: unknown enum value {direction}")


def model_offering(
    models: Registry,
    task: type[Task],
    what: str,
    fits: Callable[[ServedModel], bool] = lambda model: True,
) -> ServedModel:
    """The model a TEI call goes to: the first served (the default first) that offers `task`
    and `fits`, labelled as the registry labels every call's model; FAILED_PRECONDITION naming
    what is served where none does (`what`: "an embedding model", ...)."""
    for model in models.offering(task):
        if fits(model):
            return models.find(model.name)
    served = "; ".join(f"{m.name!r}: {', '.join(m.task_names)}" for m in models)
    raise TeiStatusError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"no served model is {what} (this server serves {served})",
    )


def is_reranker(model: ServedModel) -> bool:
    return model.manifest.head is not None and model.manifest.head.reranker


def metadata(chars: int, tokens: int, timings: Timings, started: float) -> pb.Metadata:
    """TEI's response `Metadata`: what was computed and the stages' times in nanoseconds;
    `total_time_ns` from `started` (time.perf_counter()) until now."""
    return pb.Metadata(
        compute_chars=chars,
        compute_tokens=tokens,
        total_time_ns=int((time.perf_counter() - started) * 1e9),
        tokenization_time_ns=int(timings.tokenize_s * 1e9),
        queue_time_ns=int(timings.queue_s * 1e9),
        inference_time_ns=int(timings.inference_s * 1e9),
    )
