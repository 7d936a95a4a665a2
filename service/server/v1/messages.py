"""attnserve.v1's kit: what every cell of the protocol shares between protobuf and the tasks.

The protocol's names (`PROTOCOL`, `SERVICE_NAME`), the enum tables and the one checked reader of
an enum value, the attention options every task takes, the limits and timings messages and a
stream request's inline failure. The cells (`embed.py`, `score.py`, `late_chunking.py`, ...)
import this and the tasks, never each other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

from attnserve.service.server.errors import Code, invalid
from attnserve.service.server.limits import Limits
from attnserve.service.server.options import AttentionRequest, Truncation
from attnserve.service.server.status import status_number
from attnserve.service.server.timings import Timings
from attnserve.v1 import embedder_pb2 as pb

T = TypeVar("T")
PROTOCOL = "attnserve.v1"  # the calls' `protocol` metric label
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Embedder"].full_name

TRUNCATIONS = {
    pb.TRUNCATE_UNSPECIFIED: Truncation.END,
    pb.TRUNCATE_END: Truncation.END,
    pb.TRUNCATE_START: Truncation.START,
    pb.TRUNCATE_NONE: Truncation.NONE,
}
AGGREGATIONS = {
    pb.HEAD_AGGREGATION_UNSPECIFIED: False,
    pb.HEAD_AGGREGATION_NONE: False,
    pb.HEAD_AGGREGATION_MEAN: True,
}
OUTPUT_DTYPES = {
    pb.DTYPE_UNSPECIFIED: pb.DTYPE_FLOAT32,
    pb.DTYPE_FLOAT32: pb.DTYPE_FLOAT32,
    pb.DTYPE_FLOAT16: pb.DTYPE_FLOAT16,
}


def enum_value(table: Mapping[Any, T], value: int, field: str) -> T:
    """An enum field's meaning, or INVALID_ARGUMENT naming the field (a newer client's value)."""
    if value not in table:
        raise invalid(f"{field}: unknown enum value {value}")
    return table[value]


def attention_request(options: pb.AttentionOptions) -> AttentionRequest | None:
    """The maps an `AttentionOptions` asks for (Embed's, Rerank's, Classify's, EmbedChunks')."""
    if not options.enabled:
        return None
    return AttentionRequest(
        layers=tuple(options.layers),
        heads=tuple(options.heads),
        average_heads=enum_value(AGGREGATIONS, options.aggregation, "attention.aggregation"),
    )


def limits_message(limits: Limits) -> pb.Limits:
    return pb.Limits(
        max_texts_per_request=limits.max_texts_per_request,
        max_chars_per_text=limits.max_chars_per_text,
        max_tokens_per_text=limits.max_tokens_per_text,
        max_attention_elements=limits.max_attention_elements,
        max_receive_message_bytes=limits.max_receive_message_bytes,
        max_send_message_bytes=limits.max_send_message_bytes,
        max_queue_texts=limits.max_queue_texts,
        max_documents_per_request=limits.max_documents_per_request,
        max_document_tokens=limits.max_document_tokens,
        max_late_chunking_documents=limits.max_late_chunking_documents,
        max_chunks_per_document=limits.max_chunks_per_document,
    )


def timings_message(timings: Timings, started: float) -> pb.Timings:
    """A response's stage times; `total_ms` from `started` (time.perf_counter()) until now."""
    return pb.Timings(
        queue_ms=timings.queue_s * 1000,
        tokenize_ms=timings.tokenize_s * 1000,
        inference_ms=timings.inference_s * 1000,
        total_ms=(time.perf_counter() - started) * 1000,
    )


def inline_error(code: Code, message: str) -> pb.Error:
    """A streamed request's failure, inside the stream: the status number and the message its
    unary call would have been answered with."""
    return pb.Error(code=status_number(code), message=message)
