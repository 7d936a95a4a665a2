"""A text's attention maps as the client fetched them, with what is needed to say what they are.

The heatmaps and the HTML view both draw from `TextAttention`: the exact post-softmax maps from
the server (Embed with attention), the token strings from Tokenize (so labels are the tokens the
model saw, word pieces included), and which layers and heads the maps are, averaged or not. A
(query, document) pair read by a reranker is drawn the same way, from Rerank with attention
(the pair's maps and tokens), with its cross block marked: the query's tokens (rows) looking at
the document's (columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from attnserve.service.client.client import EmbedderClient

Span = tuple[int, int]


@dataclass(frozen=True)
class TextAttention:
    text: str
    model: str
    tokens: list[str]
    special: list[bool]  # tokens the tokenizer added ([CLS], [SEP]), not from the text
    maps: np.ndarray  # (layers, heads, n, n) float32; heads is 1 when averaged
    layers: list[int]  # the layer each maps[i] is
    heads: list[int]  # the heads the maps cover: one each, or averaged together
    averaged: bool  # maps[:, 0] is the mean over `heads`
    difference_from: str | None = None  # set when maps are this text's minus another's
    document: str | None = None  # set for a pair: `text` is the query, this the document
    # A pair's cross block: the query's token rows [start, end), the document's columns.
    block: tuple[Span, Span] | None = None

    def __post_init__(self) -> None:
        layers, heads, rows, cols = self.maps.shape
        if not rows == cols == len(self.tokens):
            raise ValueError(f"maps of {rows} x {cols} for {len(self.tokens)} tokens")
        if layers != len(self.layers) or heads != (1 if self.averaged else len(self.heads)):
            raise ValueError(f"maps {self.maps.shape} for layers {self.layers}, heads {self.heads}")


def colour_top(maps: np.ndarray) -> float:
    """The colour scale's top for a text's maps: the largest weight over every layer and head
    the file holds. The PNG grid and the HTML view both use it, so a weight has one colour in
    every panel and view of a text (a per-view scale made the same cell look different)."""
    return max(float(np.asarray(maps).max()), 1e-6)


def fetch_attention(
    client: EmbedderClient,
    text: str,
    *,
    layers: Sequence[int] = (),
    heads: Sequence[int] = (),
    average: bool = False,
    prompt_name: str | None = None,
    model: str = "",
    max_tokens: int = 0,
) -> TextAttention:
    """Tokens and maps of one text; empty `layers` / `heads` mean all of them; `prompt_name`,
    `model` and `max_tokens` (0: the model's default cap) as `EmbedderClient.embed` takes them
    (the prompt's tokens are part of what is shown).

    A long text's maps can exceed what the server sends in one response
    (`Info.limits.max_attention_elements`: 6 layers x 12 heads of a 512-token text hold 19
    million): they are then fetched a few layers at a time and stacked."""
    (tokens,) = client.tokenize([text], prompt_name=prompt_name, max_tokens=max_tokens, model=model)
    info = client.info(model)
    chosen = list(layers) or list(range(info.num_layers))
    per_layer = (1 if average else len(heads) or info.num_heads) * len(tokens) ** 2
    step = max(1, info.limits.max_attention_elements // per_layer)  # one layer over it: refused
    parts = []
    for first in range(0, len(chosen), step):
        served = client.embed(
            [text],
            pooled=False,
            attention=True,
            layers=chosen[first : first + step],
            heads=heads,
            average_heads=average,
            prompt_name=prompt_name,
            max_tokens=max_tokens,
            model=model,
        )
        assert served.attentions[0] is not None  # asked for: sent (or the call failed)
        parts.append(served)
    return TextAttention(
        text=text,
        model=parts[0].model,
        tokens=[token.text for token in tokens],
        special=[token.special for token in tokens],
        maps=np.concatenate([np.asarray(p.attentions[0], dtype=np.float32) for p in parts]),
        layers=[layer for p in parts for layer in p.attention_layers],
        heads=parts[0].attention_heads,
        averaged=average,
    )


def fetch_pair_attention(
    client: EmbedderClient,
    query: str,
    document: str,
    *,
    layers: Sequence[int] = (),
    heads: Sequence[int] = (),
    average: bool = False,
    model: str = "",
) -> TextAttention:
    """A reranker's maps over the pair (query, document), as it read them together, with the
    cross block (query rows x document columns) marked; `model` as `EmbedderClient.rerank`."""
    (ranked,) = client.rerank(
        query, [document], attention=True, layers=layers, heads=heads, average_heads=average,
        model=model,
    )  # fmt: skip
    served = ranked.attention
    assert served is not None  # asked for, so the server sent them (or failed the call)
    query_span, document_span = served.segments
    inside = [range(start, end) for start, end in served.segments]
    return TextAttention(
        text=query,
        model=client.info(model).model_name,
        tokens=served.tokens,
        special=[not any(i in span for span in inside) for i in range(len(served.tokens))],
        maps=np.asarray(served.maps, dtype=np.float32),
        layers=served.layers,
        heads=served.heads,
        averaged=average,
        document=document,
        block=(query_span, document_span),
    )


def difference(first: TextAttention, second: TextAttention) -> TextAttention:
    """first's maps minus second's, where both texts have as many tokens (e.g. one word swapped).

    Token labels read "a|b" where the texts' tokens differ."""
    if first.maps.shape != second.maps.shape:
        raise ValueError(
            f"the difference needs texts of equal token counts: {len(first.tokens)} tokens vs "
            f"{len(second.tokens)} ({first.text!r} vs {second.text!r})"
        )
    tokens = [a if a == b else f"{a}|{b}" for a, b in zip(first.tokens, second.tokens, strict=True)]
    return replace(first, tokens=tokens, maps=first.maps - second.maps, difference_from=second.text)
