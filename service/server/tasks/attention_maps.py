"""The attention maps a request asks for, whatever the task: which layers and heads (checked
against the model) and which graph runs them (`plan`), the elements and bytes they would take
(refused before any inference), and each row's selection out of the maps graph's every layer
and head.

One implementation for the tasks that serve maps: `embed` (a text's maps), `score` (a pair's
maps, where the query's tokens look in the document) and `late_chunking` (each chunk's rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnserve.service.artifact import GraphPurpose, ModelSpec
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.limits import Limits
from attnserve.service.server.options import AttentionRequest
from attnserve.service.server.tokenizer import EncodedText


@dataclass(frozen=True)
class MapsPlan:
    """What a request's maps take: the layers and heads selected, how many heads each answer
    shows (1 when averaged), and the graph that runs the request."""

    layers: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()
    average_heads: bool = False
    purpose: GraphPurpose = "fast"

    @property
    def shown_heads(self) -> int:
        return 1 if self.average_heads and self.heads else len(self.heads)

    @property
    def per_token_pair(self) -> int:
        """Map elements per (row token, column token): layers x shown heads (0: no maps)."""
        return len(self.layers) * self.shown_heads

    def square_elements(self, encoded: list[EncodedText]) -> int:
        """Every text's whole (n x n) maps, as `embed` and `score` answer them."""
        return sum(self.per_token_pair * text.length**2 for text in encoded)


NO_MAPS = MapsPlan()


def plan(model: ModelSpec, maps_available: bool, request: AttentionRequest | None) -> MapsPlan:
    """The maps `request` asks for (None: none, the fast graph), checked against the model."""
    if request is None:
        return NO_MAPS
    layers, heads = resolve_attention(model, maps_available, request)
    return MapsPlan(layers, heads, request.average_heads, "maps")


def resolve_attention(
    model: ModelSpec, maps_available: bool, request: AttentionRequest
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The layers and heads a request selects (empty: all), each in range and none repeated."""
    if not maps_available:
        raise invalid("this artifact has no attention-maps graph")
    layers = request.layers or tuple(range(model.num_layers))
    heads = request.heads or tuple(range(model.num_heads))
    for kind, chosen, count in (
        ("layer", layers, model.num_layers),
        ("head", heads, model.num_heads),
    ):
        bad = [i for i in chosen if not 0 <= i < count]
        if bad:
            raise invalid(
                f"{kind} {bad[0]} is out of range: the model has {count} {kind}s (0..{count - 1})"
            )
        if len(set(chosen)) != len(chosen):
            raise invalid(f"{kind}s must not repeat: {list(chosen)}")
    return layers, heads


def check_attention_elements(
    limits: Limits,
    elements: int,
    what: str = "the attention maps asked for",
    fewer: str = "send fewer or shorter texts",
) -> None:
    """Refuse maps of more elements than a response may hold (max_attention_elements)."""
    limit = limits.max_attention_elements
    if elements > limit:
        raise invalid(
            f"{what} hold {elements} elements, over the limit of {limit} per response "
            f"(max_attention_elements); select fewer layers or heads, average the heads, or "
            f"{fewer}"
        )


def check_response_bytes(size: int, limit: int, advice: str) -> None:
    """Refuse, before any inference, a response larger than the transport may send: gRPC
    would fail it on the way out, after the work was done."""
    if size > limit:
        raise ServiceError(
            Code.RESOURCE_EXHAUSTED,
            f"the response would take about {size} bytes, over the server's limit of "
            f"{limit} (max_send_message_bytes); {advice}",
        )


def select_maps(maps: np.ndarray, plan: MapsPlan) -> np.ndarray:
    """(every layer, every head, n, n) -> (layers, heads or 1, n, n), as planned."""
    chosen = maps[np.ix_(plan.layers, plan.heads)]  # (l, h, n, n)
    return chosen.mean(axis=1, keepdims=True) if plan.average_heads else chosen
