"""Every route set of the HTTP app, one per cell: the protocol's list, as `v1/service.py` is
attnserve.v1's. A route set is added whatever the served models offer, so a route for a task no
model offers answers the task's refusal naming what is offered (400), not a bare 404."""

from __future__ import annotations

from attnserve.service.server.http.classify import ClassifyRoutes
from attnserve.service.server.http.explain import ExplainRoutes
from attnserve.service.server.http.fields import RouteSet
from attnserve.service.server.http.late_chunking import LateChunkRoutes
from attnserve.service.server.http.openai import OpenAIRoutes
from attnserve.service.server.http.rerank import RerankRoutes
from attnserve.service.server.http.tei import TeiRoutes
from attnserve.service.server.registry import Registry


def route_sets(models: Registry) -> list[RouteSet]:
    return [
        OpenAIRoutes(models),
        RerankRoutes(models),
        ClassifyRoutes(models),
        LateChunkRoutes(models),
        ExplainRoutes(models),
        TeiRoutes(models),
    ]
