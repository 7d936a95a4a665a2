"""The attention maps a request asks for, whatever the task: which layers and heads (checked
against the model), the elements and bytes they would take (refused before any inference), and
each row's selection out of the maps graph's every layer and head.

One implementation for the tasks that serve maps: `embed` (a text's maps) and `score` (a pair's
maps, where the query's tokens look in the document).
"""

from __future__ import annotations

import numpy as np

from attnserve.service.artifact import ModelSpec
from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.limits import Limits
from attnserve.service.server.options import AttentionRequest
from attnserve.service.server.tokenizer import EncodedText


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


def check_attention_size(
    limits: Limits, encoded: list[EncodedText], layers: int, heads: int
) -> None:
    elements = sum(layers * heads * text.length**2 for text in encoded)
    limit = limits.max_attention_elements
    if elements > limit:
        raise invalid(
            f"the attention maps asked for hold {elements} elements, over the limit of "
            f"{limit} per response (max_attention_elements); select fewer layers or heads, "
            "average the heads, or send fewer or shorter texts"
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


def select_maps(
    maps: np.ndarray, layers: tuple[int, ...], heads: tuple[int, ...], average_heads: bool
) -> np.ndarray:
    """(every layer, every head, n, n) -> (layers, heads or 1, n, n), as asked."""
    chosen = maps[np.ix_(layers, heads)]  # (l, h, n, n)
    return chosen.mean(axis=1, keepdims=True) if average_heads else chosen
