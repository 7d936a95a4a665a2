"""The request body of the late-chunking route, as a pydantic model for the API reference
(`openapi.py`); tests/clients posts its example to the real route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from attnserve.service.server.http.fields import body_config


class ChunkDocumentBody(BaseModel):
    text: str
    spans: list[tuple[int, int]] | None = Field(None, description="[start, end) code points")
    tokens_per_chunk: int | None = Field(None, ge=1, description="or a chunk every N tokens")


class LateChunkingBody(BaseModel):
    """`POST /v1/late_chunking`: one vector per chunk, each with its whole document as context."""

    model_config = body_config(
        {"documents": [{"text": "The bank by the river flooded.", "tokens_per_chunk": 4}]}
    )

    documents: list[ChunkDocumentBody]
    model: str | None = None
    truncate: bool | Literal["end", "start", "none"] | None = Field(
        None, description="absent: refuse"
    )
    truncation_direction: Literal["left", "right"] | None = None
    normalize: bool | None = None
    encoding_format: Literal["float", "base64"] = "float"
