"""The request body of Infinity's and vLLM's classify routes, as a pydantic model for the API
reference (`openapi.py`); tests/clients posts its example to the real routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from attnserve.service.server.http.fields import body_config


class ClassifyBody(BaseModel):
    """`POST /classify` (Infinity's answer) and `POST /v1/classify` (vLLM's): each input
    against the head's labels."""

    model_config = body_config({"input": ["Attention weighs tokens."]})

    input: str | list[str]
    model: str | None = Field(None, description="a served cross-encoder; absent: the default")
    raw_scores: bool = Field(False, description="the logits, without the head's activation")
    truncate: bool | None = Field(None, description="absent: cut, as TEI's predict")
