"""The `attnserve.v1.Embedder` service: its methods, gathered from the protocol's cells.

One cell per task (and one each for the model-wide calls, Tokenize and Info); each hands over its
methods and this joins them into the one service a gRPC server registers. A cell is registered
whatever the served models offer, so a call for a task no model offers is answered by the task's
refusal naming what is offered (INVALID_ARGUMENT), not UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc

from attnserve.service.server.calls import Front
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.v1.embed import EmbedCell
from attnserve.service.server.v1.explain import ExplainCell
from attnserve.service.server.v1.info import InfoCell
from attnserve.service.server.v1.late_chunking import LateChunkCell
from attnserve.service.server.v1.messages import PROTOCOL, SERVICE_NAME
from attnserve.service.server.v1.retrieval import RetrievalCell
from attnserve.service.server.v1.score import ScoreCell
from attnserve.service.server.v1.tokenize import TokenizeCell

CELLS = (
    EmbedCell,
    ScoreCell,
    LateChunkCell,
    RetrievalCell,
    ExplainCell,
    TokenizeCell,
    InfoCell,
)
__all__ = ["PROTOCOL", "SERVICE_NAME", "handlers"]


def handlers(
    models: Registry, front: Front, settings: Settings
) -> dict[str, grpc.RpcMethodHandler]:
    """Every method of the service, by name."""
    methods: dict[str, grpc.RpcMethodHandler] = {}
    for cell in CELLS:
        methods.update(cell(models, front, settings).handlers())
    return methods
