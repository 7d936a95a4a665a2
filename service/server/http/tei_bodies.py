"""The request bodies of text-embeddings-inference's HTTP API, as pydantic models: field by
field TEI's router (`router/src/http/types.rs`: names, types, defaults), plus `model` (attnserve
serves several; absent means the default, as everywhere).

Strict types (JSON's "true" is not true, 1 is not a string), unknown fields ignored as serde
ignores them. What a field means is read by the HTTP kit where every route shares it
(`fields.truncation` for `truncate` and `truncation_direction`): these models only say which
fields exist and their types, so `tei.py` refuses a wrong one with TEI's status and its name.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from attnserve.service.server.errors import invalid
from attnserve.service.server.http.fields import body_config

Texts = StrictStr | list[StrictStr]


Direction = StrictStr  # "right" | "left", any case (fields.truncation reads it)


class TeiBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model: StrictStr | None = Field(None, description="attnserve: the served model (default)")


class EmbedBody(TeiBody):
    """`/embed` and `/` for an embedder: pooled vectors, one per input."""

    model_config = body_config({"inputs": ["What is Deep Learning?"], "normalize": True})

    inputs: Texts
    truncate: StrictBool | None = Field(None, description="null: the server's --auto-truncate")
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None
    normalize: StrictBool = True
    dimensions: StrictInt | None = Field(None, ge=1)


class EmbedAllBody(TeiBody):
    """`/embed_all`: every token's vector, one matrix per input."""

    model_config = body_config({"inputs": "What is Deep Learning?"})

    inputs: Texts
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None


class EmbedSparseBody(TeiBody):
    """`/embed_sparse`: a SPLADE (or bge-m3) model's sparse vector per input, its non-zero
    vocabulary terms as {index, value} sorted by index."""

    model_config = body_config({"inputs": "What is Deep Learning?"})

    inputs: Texts
    truncate: StrictBool | None = Field(None, description="null: the server's --auto-truncate")
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = Field(None, description="refused: sparse vectors take none")


class SimilarityInputs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    source_sentence: StrictStr
    sentences: list[StrictStr]


class SimilarityParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None


class SimilarityBody(TeiBody):
    """`/similarity`: the cosine of the source sentence with each sentence."""

    model_config = body_config(
        {
            "inputs": {
                "source_sentence": "What is Deep Learning?",
                "sentences": ["What is Machine Learning?"],
            }
        }
    )

    inputs: SimilarityInputs
    parameters: SimilarityParameters | None = None


class RerankBody(TeiBody):
    """`/rerank` and `/` for a reranker: each text scored against the query, best first."""

    model_config = body_config(
        {"query": "What is Deep Learning?", "texts": ["Deep Learning is ...", "Cheese is ..."]}
    )

    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool | None = Field(None, description="null: cut (as TEI's auto-truncate)")
    truncation_direction: Direction = "right"
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class PredictBody(TeiBody):
    """`/predict` and `/` for a classifier: a text, a pair, or a batch of texts and pairs."""

    model_config = body_config({"inputs": ["What is Deep Learning?", "Deep Learning is ..."]})

    inputs: StrictStr | list[StrictStr] | list[list[StrictStr]]
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"
    raw_scores: StrictBool = False


class TokenizeBody(TeiBody):
    """`/tokenize`: each input's tokens, with UTF-8 byte offsets into it (as TEI)."""

    model_config = body_config({"inputs": "What is Deep Learning?"})

    inputs: Texts
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None


class DecodeBody(TeiBody):
    """`/decode`: token ids back to text."""

    model_config = body_config({"ids": [101, 2054, 2003, 102]})

    ids: list[StrictInt] | list[list[StrictInt]]
    skip_special_tokens: StrictBool = True


Body = TypeVar("Body", bound=BaseModel)


def parse(kind: type[Body], body: dict[str, Any]) -> Body:
    """`body` as `kind`, or INVALID_ARGUMENT naming the first wrong field and what it must be."""
    try:
        return kind.model_validate(body)
    except ValidationError as failure:
        first = failure.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise invalid(f"'{where}': {first['msg'].lower()}") from None
