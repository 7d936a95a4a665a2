"""The request body of OpenAI's embeddings route, as a pydantic model for the API reference
(`openapi.py`): the fields `openai.py` reads, their types and defaults. `openai.py` reads the
JSON itself (its refusals are OpenAI's words); tests/clients posts this model's example to the
real route, so the reference and the route agree on it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from attnserve.service.server.http.fields import body_config

Truncate = bool | Literal["end", "start", "none"]


class EmbeddingsBody(BaseModel):
    """`POST /v1/embeddings` (and `/embeddings`): one vector per input."""

    model_config = body_config({"input": ["first text", "second text"]})

    input: str | list[str] = Field(description="up to --max-texts-per-request (2,048) texts")
    model: str | None = Field(None, description="a served model; absent: the default")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="Matryoshka: the first N, normalised")
    user: str | None = Field(None, description="accepted and ignored, as OpenAI's")
    truncate: Truncate | None = Field(None, description="absent: --auto-truncate (off: refuse)")
    truncation_direction: Literal["left", "right"] | None = None
    chunking: bool | None = Field(None, description="a long text as pooled windows")
    chunk_overlap: int | None = Field(None, ge=0)
