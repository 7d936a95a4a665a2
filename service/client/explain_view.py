"""The explanation view: one self-contained HTML file (no network), as the attention view is.

The pair matrix (each cell coloured by its share of the cosine, the shares as bars, a cell's
value on hover) and each text's (or document's) rollout relevance, with the existing attention
view of each text (or pair) beside them, inline: the attention view's own page in an iframe's
`srcdoc`, so it works exactly as `attnserve attend --html` writes it.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from attnserve.service.client.attention import TextAttention
from attnserve.service.client.client import Explanation
from attnserve.service.client.heatmap import shorten
from attnserve.service.client.html_view import view_html

TEMPLATE = "explain_view.html"


def page_data(
    explained: Explanation, texts: list[str], attentions: list[TextAttention]
) -> dict[str, object]:
    """What the page draws: `texts` as asked (the query first for a reranker), the attention
    views to show beside (may be empty)."""
    rollouts: list[dict[str, object]] = []
    similarity = None
    if explained.documents:
        query, documents = texts[0], texts[1:]
        title = f"Why the documents rank as they do for “{shorten(query, 80)}”"
        for document in explained.documents:
            rollouts.append(
                {
                    "title": f"document {document.index} (score {document.score:.4f}): "
                    f"“{shorten(documents[document.index], 60)}”, rollout from CLS",
                    "tokens": document.tokens,
                    "relevance": document.relevance.astype(float).tolist(),
                }
            )
    else:
        title = (
            f"Why “{shorten(texts[0], 60)}” and “{shorten(texts[1], 60)}” are similar"
            if explained.similarity is not None
            else f"What “{shorten(texts[0], 80)}” rests on"
        )
        for text, said in zip(explained.texts, texts, strict=True):
            if text.relevance is not None:
                rollouts.append(
                    {
                        "title": f"“{shorten(said, 60)}”, from the pooled position "
                        f"({explained.pooling})",
                        "tokens": [token.text for token in text.tokens],
                        "relevance": text.relevance.astype(float).tolist(),
                    }
                )
    if explained.similarity is not None:
        s = explained.similarity
        similarity = {
            "rows": [token.text for token in explained.texts[0].tokens],
            "cols": [token.text for token in explained.texts[1].tokens],
            "cells": s.cells.astype(float).tolist(),
            "first_shares": s.first_shares.astype(float).tolist(),
            "second_shares": s.second_shares.astype(float).tolist(),
            "cosine": s.cosine,
            "cells_sum": s.cells_sum,
        }
    views = [
        {
            "title": f"Attention maps of “{shorten(attention.text, 60)}”"
            + (f" with “{shorten(attention.document, 40)}”" if attention.document else ""),
            "html": view_html(attention),
        }
        for attention in attentions
    ]
    return {
        "title": title,
        "subtitle": f"{explained.model}; pooling: {explained.pooling or 'a reranker (CLS)'}",
        "footer": (
            "The similarity matrix is exact for mean pooling: the cells, t_i . u_j / (n m |a| "
            "|b|) over the pooled token vectors, sum to the served cosine. Attention rollout "
            "(Abnar & Zuidema, 2020: per layer the head-averaged map with the residual added, "
            "0.5 A + 0.5 I, rows renormalised, multiplied through the layers) approximates how "
            "much each input token reaches the pooled position; it is not an exact account of "
            "the model. This page makes no network requests."
        ),
        "similarity": similarity,
        "rollouts": rollouts,
        "views": views,
    }


def explain_html(explained: Explanation, texts: list[str], attentions: list[TextAttention]) -> str:
    template = (
        resources.files("attnserve.service.client").joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    data = page_data(explained, texts, attentions)
    # Inside <script>, only "</" can end the element early: escape it (JSON allows "<\/").
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(str(data["title"])[:120])
    return template.replace("__ATTNSERVE_TITLE__", title).replace("__ATTNSERVE_DATA__", payload)
