"""The request bodies of Cohere's and Jina's rerank routes, as pydantic models for the API
reference (`openapi.py`): the fields `rerank.py` reads, their types and defaults; tests/clients
posts each example to the real route."""

from __future__ import annotations

from pydantic import BaseModel, Field

from attnserve.service.server.http.fields import body_config

EXAMPLE = {"query": "what is attention", "documents": ["Attention weighs tokens.", "Prices rose."]}


class DocumentText(BaseModel):
    text: str


class RerankV1Body(BaseModel):
    """`POST /v1/rerank` (Cohere v1, Jina): the documents scored against the query."""

    model_config = body_config({**EXAMPLE, "top_n": 1, "return_documents": True})

    query: str
    documents: list[str | DocumentText]
    model: str | None = Field(None, description="a served reranker; absent: the default")
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    truncate: bool | None = Field(None, description="absent: cut, longest first")


class RerankV2Body(BaseModel):
    """`POST /v2/rerank` (Cohere v2): as v1, documents as strings, no return_documents."""

    model_config = body_config({**EXAMPLE, "top_n": 2, "max_tokens_per_doc": 4096})

    query: str
    documents: list[str]
    model: str | None = None
    top_n: int | None = Field(None, ge=1)
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="each pair's token cap, when below the model's own"
    )
    truncate: bool | None = None
