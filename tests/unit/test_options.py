"""`attnserve.v1` request options -> the pipeline's `EmbedOptions`: defaults and refusals."""

from __future__ import annotations

import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.options import AttentionRequest, EmbedOptions, Truncation
from attnserve.service.server.v1.embed import options_from_proto
from attnserve.v1 import embedder_pb2 as pb


def test_an_empty_options_message_means_the_documented_defaults() -> None:
    options, dtype = options_from_proto(pb.EmbedOptions())
    assert options == EmbedOptions(
        pooled=True,
        token_embeddings=False,
        normalize=None,
        truncation=Truncation.END,
        attention=None,
        max_tokens=None,
    )
    assert dtype == pb.DTYPE_FLOAT32


def test_explicit_false_is_not_the_same_as_unset() -> None:
    options, _ = options_from_proto(pb.EmbedOptions(pooled=False, normalize=False))
    assert options.pooled is False
    assert options.normalize is False


def test_every_field_is_carried_over() -> None:
    options, dtype = options_from_proto(
        pb.EmbedOptions(
            token_embeddings=True,
            truncate=pb.TRUNCATE_START,
            max_tokens=32,
            output_dtype=pb.DTYPE_FLOAT16,
            attention=pb.AttentionOptions(
                enabled=True, layers=[0, 2], heads=[1], aggregation=pb.HEAD_AGGREGATION_MEAN
            ),
        )
    )
    assert options.token_embeddings
    assert options.truncation is Truncation.START
    assert options.max_tokens == 32
    assert options.attention == AttentionRequest(layers=(0, 2), heads=(1,), average_heads=True)
    assert dtype == pb.DTYPE_FLOAT16


def test_attention_fields_without_enabled_ask_for_no_maps() -> None:
    options, _ = options_from_proto(pb.EmbedOptions(attention=pb.AttentionOptions(layers=[1])))
    assert options.attention is None


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.EmbedOptions(truncate=9), "truncate"),  # type: ignore[arg-type]
        (pb.EmbedOptions(output_dtype=7), "output_dtype"),  # type: ignore[arg-type]
        (
            pb.EmbedOptions(attention=pb.AttentionOptions(enabled=True, aggregation=5)),  # type: ignore[arg-type]
            "attention.aggregation",
        ),
    ],
)
def test_unknown_enum_values_are_invalid_arguments(message: pb.EmbedOptions, field: str) -> None:
    with pytest.raises(ServiceError) as caught:
        options_from_proto(message)
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert caught.value.message.startswith(f"{field}: unknown enum value")
