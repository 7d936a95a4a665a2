"""TEI's gRPC API, `tei.v1`: its five services, each built from its cell, and which of them
a server's models answer (their health).

One cell per TEI service, unlike attnserve.v1's one service of many cells: TEI's clients and
probes address `tei.v1.Embed`, `tei.v1.Rerank`, ... by name, and TEI reports each one's health
on its own. A cell is registered whatever the served models offer, so a call no model answers
gets FAILED_PRECONDITION naming what is served (TEI's status for a model of the wrong type),
never UNIMPLEMENTED; its service's health says NOT_SERVING, as TEI's does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc

from attnserve.service.server.calls import Front
from attnserve.service.server.registry import Registry
from attnserve.service.server.settings import Settings
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tasks.score import ScoreTask
from attnserve.service.server.tei.embed import EmbedCell
from attnserve.service.server.tei.info import InfoCell
from attnserve.service.server.tei.messages import (
    EMBED_SERVICE,
    INFO_SERVICE,
    PREDICT_SERVICE,
    PROTOCOL,
    RERANK_SERVICE,
    TOKENIZE_SERVICE,
    is_reranker,
)
from attnserve.service.server.tei.predict import PredictCell
from attnserve.service.server.tei.rerank import RerankCell
from attnserve.service.server.tei.tokenize import TokenizeCell

__all__ = ["OFFERED", "PROTOCOL", "SERVICES"]


class Cell(Protocol):
    def __init__(self, models: Registry, front: Front, settings: Settings) -> None: ...

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]: ...


Handlers = Callable[[Registry, Front, Settings], dict[str, grpc.RpcMethodHandler]]


def build(cell: type[Cell]) -> Handlers:
    def handlers(
        models: Registry, front: Front, settings: Settings
    ) -> dict[str, grpc.RpcMethodHandler]:
        return cell(models, front, settings).handlers()

    return handlers


# Each service's name -> the builder of its methods.
SERVICES: dict[str, Handlers] = {
    INFO_SERVICE: build(InfoCell),
    EMBED_SERVICE: build(EmbedCell),
    PREDICT_SERVICE: build(PredictCell),
    RERANK_SERVICE: build(RerankCell),
    TOKENIZE_SERVICE: build(TokenizeCell),
}
# Each service's name -> whether these models answer it (health SERVING once warm).
OFFERED: dict[str, Callable[[Registry], bool]] = {
    INFO_SERVICE: lambda models: True,
    EMBED_SERVICE: lambda models: bool(models.offering(EmbedTask)),
    PREDICT_SERVICE: lambda models: bool(models.offering(ScoreTask)),
    RERANK_SERVICE: lambda models: any(map(is_reranker, models.offering(ScoreTask))),
    TOKENIZE_SERVICE: lambda models: True,
}
