"""TEI's request bodies, field for field as its router declares them (`router/src/http/
types.rs`: the field sets below are read from it), with attnserve's one addition, `model`; and
the readers of TEI's `inputs` that need no server."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from attnserve.service.server.errors import ServiceError
from attnserve.service.server.http import tei_bodies as bodies
from attnserve.service.server.http.tei import predict_inputs
from attnserve.service.server.tokenizer import byte_offsets

TEI_FIELDS: dict[type[BaseModel], set[str]] = {
    bodies.EmbedBody: {"inputs", "truncate", "truncation_direction", "prompt_name", "normalize",
                       "dimensions"},
    bodies.EmbedAllBody: {"inputs", "truncate", "truncation_direction", "prompt_name"},
    bodies.SimilarityBody: {"inputs", "parameters"},
    bodies.RerankBody: {"query", "texts", "truncate", "truncation_direction", "raw_scores",
                        "return_text"},
    bodies.PredictBody: {"inputs", "truncate", "truncation_direction", "raw_scores"},
    bodies.TokenizeBody: {"inputs", "add_special_tokens", "prompt_name"},
    bodies.DecodeBody: {"ids", "skip_special_tokens"},
}  # fmt: skip
# TEI's defaults (serde's `default`), where a field has one.
TEI_DEFAULTS: dict[tuple[type[BaseModel], str], object] = {
    (bodies.EmbedBody, "normalize"): True,
    (bodies.EmbedBody, "truncation_direction"): "right",
    (bodies.RerankBody, "raw_scores"): False,
    (bodies.RerankBody, "return_text"): False,
    (bodies.TokenizeBody, "add_special_tokens"): True,
    (bodies.DecodeBody, "skip_special_tokens"): True,
}


@pytest.mark.parametrize("body", list(TEI_FIELDS), ids=[kind.__name__ for kind in TEI_FIELDS])
def test_each_body_has_tei_s_fields_and_model(body: type[BaseModel]) -> None:
    assert set(body.model_fields) == TEI_FIELDS[body] | {"model"}


def test_tei_s_defaults() -> None:
    for (body, field), default in TEI_DEFAULTS.items():
        assert body.model_fields[field].default == default, (body.__name__, field)
    parameters = bodies.SimilarityParameters.model_fields
    assert set(parameters) == {"truncate", "truncation_direction", "prompt_name"}


def test_wrong_types_are_refused_naming_the_field() -> None:
    with pytest.raises(ServiceError, match="'normalize'"):
        bodies.parse(bodies.EmbedBody, {"inputs": "a", "normalize": "true"})
    with pytest.raises(ServiceError, match=r"'inputs\.source_sentence'"):
        bodies.parse(bodies.SimilarityBody, {"inputs": {"sentences": ["a"]}})
    parsed = bodies.parse(bodies.EmbedBody, {"inputs": "a", "unknown": 1})  # ignored, as serde
    assert parsed.inputs == "a"


def test_predict_inputs_as_tei_reads_them() -> None:
    assert predict_inputs("a") == (["a"], True)
    assert predict_inputs(["a", "b"]) == ([("a", "b")], True)  # two strings: one pair
    assert predict_inputs([["a", "b"], ["c", "d"]]) == ([("a", "b"), ("c", "d")], False)
    assert predict_inputs([["a"], ["b"]]) == (["a", "b"], False)
    with pytest.raises(ServiceError, match="all texts or all pairs"):
        predict_inputs([["a"], ["b", "c"]])
    with pytest.raises(ServiceError, match="cannot be empty"):
        predict_inputs([])


def test_byte_offsets_are_utf8_positions() -> None:
    text = "déjà vu"
    offsets = byte_offsets(text)
    assert offsets[-1] == len(text.encode())
    assert text.encode()[offsets[5] : offsets[7]].decode() == "vu"
