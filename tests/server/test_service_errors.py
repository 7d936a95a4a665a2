"""Bad input gets the right status and a clear message; the server keeps serving."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from tests.support.servers import ServerThread, metric


def status_of(client: EmbedderClient, request: pb.EmbedRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        client.embed_raw(request)
    return caught.value.code(), caught.value.details() or ""


def still_serving(client: EmbedderClient) -> None:
    served = client.embed(["still here"])
    assert served.pooled is not None


@pytest.mark.parametrize(
    ("request_factory", "message_part"),
    [
        (lambda s: pb.EmbedRequest(), "no texts"),
        (lambda s: pb.EmbedRequest(texts=["ok", ""]), "text 1 is empty"),
        (
            lambda s: pb.EmbedRequest(texts=["x" * (s.max_chars_per_text + 1)]),
            "over the limit of",
        ),
        (
            lambda s: pb.EmbedRequest(texts=["a"] * (s.max_texts_per_request + 1)),
            "per request",
        ),
        (
            lambda s: pb.EmbedRequest(
                texts=["word " * 300], options=pb.EmbedOptions(truncate=pb.TRUNCATE_NONE)
            ),
            "over the limit of 256",
        ),
        (lambda s: pb.EmbedRequest(texts=["a"], options=pb.EmbedOptions(truncate=9)), "truncate"),  # type: ignore[arg-type]
        (
            lambda s: pb.EmbedRequest(texts=["a"], options=pb.EmbedOptions(output_dtype=7)),  # type: ignore[arg-type]
            "output_dtype",
        ),
        (
            lambda s: pb.EmbedRequest(
                texts=["a"],
                options=pb.EmbedOptions(attention=pb.AttentionOptions(enabled=True, layers=[6])),
            ),
            "layer 6 is out of range",
        ),
        (
            lambda s: pb.EmbedRequest(
                texts=["a"],
                options=pb.EmbedOptions(attention=pb.AttentionOptions(enabled=True, heads=[12])),
            ),
            "head 12 is out of range",
        ),
        (
            lambda s: pb.EmbedRequest(texts=["a"], options=pb.EmbedOptions(max_tokens=513)),
            "max_tokens must be in",
        ),
    ],
    ids=[
        "empty-request",
        "empty-text",
        "too-many-chars",
        "too-many-texts",
        "too-long-no-truncation",
        "unknown-truncate",
        "unknown-dtype",
        "layer-out-of-range",
        "head-out-of-range",
        "max-tokens-over-limit",
    ],
)
def test_bad_input_is_invalid_argument(
    client: EmbedderClient, server: ServerThread, request_factory: object, message_part: str
) -> None:
    request = request_factory(server.settings)  # type: ignore[operator]
    code, message = status_of(client, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message_part in message
    still_serving(client)


def test_deadline_already_passed(client: EmbedderClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        # 64 texts of ~200 tokens: far more than 1 ms of work on any machine.
        client.embed(["late " * 200] * 64, timeout_s=0.001)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    still_serving(client)


def test_texts_whose_deadline_passed_in_the_queue_never_reach_the_model(
    server: ServerThread,
) -> None:
    registry = server.running.assembly.metrics.registry

    def inferred() -> float:
        return metric(registry, "attnserve_batch_size_texts_sum")

    batcher = server.running.assembly.models.default.batcher
    with EmbedderClient(server.target, attempts=1) as client:
        # Settle first: a batch still running for an earlier test (whose caller gave up) would
        # be counted below. This call's answer comes after any such batch has finished.
        still_serving(client)
        before = inferred()
        busy = client.stub.Embed.future(
            pb.EmbedRequest(texts=["keeps the model busy for a while " * 12] * 200), timeout=120
        )
        deadline = time.monotonic() + 30
        while batcher.depth == 0 and time.monotonic() < deadline:  # until they are queued
            time.sleep(0.005)
        with pytest.raises(grpc.RpcError) as caught:
            client.embed(["queued behind it"], timeout_s=0.2)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(busy.result().results) == 200
    assert inferred() - before == 200  # the expired text was dropped before inference


def test_client_cancelling_mid_batch_harms_nobody(server: ServerThread) -> None:
    with EmbedderClient(server.target) as client:
        long_texts = ["a long text about cancellation " * 20] * 200
        future = client.stub.Embed.future(pb.EmbedRequest(texts=long_texts))
        neighbour = threading.Thread(target=lambda: still_serving(client))
        neighbour.start()
        time.sleep(0.05)
        future.cancel()
        neighbour.join(timeout=60)
        assert future.cancelled()
        still_serving(client)
    deadline = time.monotonic() + 30
    while server.running.assembly.models.default.batcher.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        server.running.assembly.models.default.batcher.depth == 0
    )  # the cancelled texts left the queue


unicode_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=300
) | st.sampled_from(["\x00", "\u202e abc", "e\u0301\u0301\u0301", "🚀" * 2000, "a" * 60_000])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(unicode_text, min_size=0, max_size=5),
    truncate=st.sampled_from([0, 1, 2, 3, 17]),
    tokens=st.booleans(),
    attention=st.booleans(),
    layers=st.lists(st.integers(0, 8), max_size=3),
    dtype=st.sampled_from([0, 1, 2, 5]),
    max_tokens=st.integers(0, 600),
)
def test_random_unicode_and_options_never_internal(
    client: EmbedderClient,
    texts: list[str],
    truncate: int,
    tokens: bool,
    attention: bool,
    layers: list[int],
    dtype: int,
    max_tokens: int,
) -> None:
    options = pb.EmbedOptions(
        truncate=truncate,  # type: ignore[arg-type]  # deliberately out-of-range enum numbers
        token_embeddings=tokens,
        output_dtype=dtype,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        attention=pb.AttentionOptions(enabled=attention, layers=layers),
    )
    request = pb.EmbedRequest(texts=texts, options=options)
    try:
        response = client.embed_raw(request)
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    else:
        assert len(response.results) == len(texts)
