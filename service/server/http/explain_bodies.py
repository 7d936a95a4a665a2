"""The request body of the explanation route, as a pydantic model for the API reference
(`openapi.py`); tests/clients posts its example to the real route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from attnserve.service.server.http.fields import body_config


class ExplainBody(BaseModel):
    """`POST /v1/explain`: two texts -> their cosine split over token pairs (mean pooling); one
    text -> its attention rollout; a query and documents on a reranker -> each document's."""

    model_config = body_config({"texts": ["The bank by the river", "A river bank"]})

    texts: list[str] | None = Field(None, description="one or two texts (an embedder)")
    query: str | None = Field(None, description="a reranker's query")
    documents: list[str] | None = Field(None, description="the documents to explain")
    model: str | None = None
    truncate: bool | Literal["end", "start", "none"] | None = Field(
        None, description="absent: cut at the end"
    )
    truncation_direction: Literal["left", "right"] | None = None
    max_tokens: int | None = Field(None, ge=0)
    dimensions: int | None = Field(None, ge=0, description="Matryoshka: the first N dimensions")
    prompt_name: str | None = None
    rollout: bool = Field(False, description="two texts: each text's rollout as well")
