"""Truncation you can see and steer, in every API: attnserve.v1 (Embed, Tokenize), OpenAI's
HTTP route and the Open Inference Protocol.

Cutting a text's start keeps its end: the kept tokens are the text's last ones between the
special tokens, and the vector equals that of the text's tail embedded on its own (exact here:
every word of the text is one token, so the tail alone tokenises to the same ids). Every
response says per text how many tokens the model saw and whether the text was cut. Tokenize
counts many texts without building their tokens. (Triton's own client: tests/server/test_oip.py.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import openai
import pytest

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc
from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.servers import ServerThread, server_settings
from tests.support.texts import LONG_TEXT, tail_of

MODEL = "all-MiniLM-L6-v2"
CAP = 256  # the packaged model's default token cap: 254 words between [CLS] and [SEP]
KEPT_WORDS = CAP - 2
TAIL = tail_of(LONG_TEXT, KEPT_WORDS)
HEAD = " ".join(LONG_TEXT.split()[:KEPT_WORDS])
SHORT = "The bank by the river"


@pytest.fixture(scope="module")
def http_server(artifact_dir: Path) -> Iterator[ServerThread]:
    """One server with the HTTP port on, shared by this module's tests."""
    running = ServerThread(server_settings(artifact_dir, http_port=0, warmup=False))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alone(http_server: ServerThread) -> dict[str, np.ndarray]:
    """The tail and the head of LONG_TEXT, each embedded on its own (no truncation)."""
    with EmbedderClient(http_server.target) as client:
        served = client.embed([TAIL, HEAD], truncate="none")
    assert served.truncated == [False, False]
    assert served.token_counts == [CAP, CAP]
    assert served.pooled is not None
    return {"tail": served.pooled[0], "head": served.pooled[1]}


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-5)


def test_the_tail_and_the_head_differ(alone: dict[str, np.ndarray]) -> None:
    """Otherwise the checks below could not tell the sides apart."""
    assert not close(alone["tail"], alone["head"])


# --- attnserve.v1 ---------------------------------------------------------------------------


def test_tokenize_cutting_the_start_keeps_the_last_tokens(http_server: ServerThread) -> None:
    with EmbedderClient(http_server.target) as client:
        (start,) = client.tokenize([LONG_TEXT], truncate="start")
        (end,) = client.tokenize([LONG_TEXT], truncate="end")
    words = LONG_TEXT.split()
    assert [t.text for t in start] == ["[CLS]", *words[-KEPT_WORDS:], "[SEP]"]
    assert [t.text for t in end] == ["[CLS]", *words[:KEPT_WORDS], "[SEP]"]
    # Offsets still index the original text: the first kept word is where the tail begins.
    assert start[1].start == len(LONG_TEXT) - len(TAIL)


def test_embed_cutting_the_start_equals_the_tail_alone(
    http_server: ServerThread, alone: dict[str, np.ndarray]
) -> None:
    with EmbedderClient(http_server.target) as client:
        start = client.embed([LONG_TEXT, SHORT], truncate="start")
        end = client.embed([LONG_TEXT], truncate="end")
    assert start.pooled is not None
    assert end.pooled is not None
    assert close(start.pooled[0], alone["tail"])
    assert close(end.pooled[0], alone["head"])
    assert start.truncated == [True, False]
    assert start.token_counts[0] == CAP
    assert start.token_counts[1] == len(SHORT.split()) + 2


def tokenize_raw(
    target: str, texts: list[str], counts_only: bool, truncate: pb.Truncate = pb.TRUNCATE_END
) -> pb.TokenizeResponse:
    with grpc.insecure_channel(target) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
        request = pb.TokenizeRequest(texts=texts, counts_only=counts_only, truncate=truncate)
        response: pb.TokenizeResponse = stub.Tokenize(request, timeout=60)
    return response


def test_tokenize_counts_only_carries_the_counts_and_no_tokens(
    http_server: ServerThread,
) -> None:
    texts = [SHORT, LONG_TEXT, "Café naïve façade — déjà vu in Zürich.", "a"]
    full = tokenize_raw(http_server.target, texts, counts_only=False)
    counted = tokenize_raw(http_server.target, texts, counts_only=True)
    assert [len(t.tokens) for t in counted.texts] == [0, 0, 0, 0]
    assert [t.token_count for t in counted.texts] == [len(t.tokens) for t in full.texts]
    assert [t.token_count for t in full.texts] == [len(t.tokens) for t in full.texts]
    assert [t.truncated for t in counted.texts] == [False, True, False, False]
    assert counted.texts[1].token_count == CAP
    # The client's call, and the counts equal what Embed reports for the same texts.
    with EmbedderClient(http_server.target) as client:
        counts = client.count_tokens(texts, truncate="start")
        served = client.embed(texts, truncate="start")
    assert [c.tokens for c in counts] == served.token_counts
    assert [c.truncated for c in counts] == served.truncated
    # Refusing over-long texts refuses in counts-only mode too.
    with pytest.raises(grpc.RpcError) as caught:
        tokenize_raw(http_server.target, texts, counts_only=True, truncate=pb.TRUNCATE_NONE)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "text 1 has 302 tokens" in str(caught.value.details())


# --- OpenAI's HTTP route --------------------------------------------------------------------


def post(server: ServerThread, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{server.running.http_port}/v1/embeddings"
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("options", "side"),
    [
        ({"truncate": "start"}, "tail"),
        ({"truncate": True, "truncation_direction": "left"}, "tail"),
        ({"truncate": True, "truncation_direction": "Left"}, "tail"),
        ({"truncate": "start", "truncation_direction": "LEFT"}, "tail"),
        ({"truncate": True}, "head"),
        ({"truncate": "end"}, "head"),
        ({"truncate": True, "truncation_direction": "right"}, "head"),
    ],
)
def test_openai_truncation_side_and_the_extension_field(
    http_server: ServerThread,
    alone: dict[str, np.ndarray],
    options: dict[str, Any],
    side: str,
) -> None:
    status, body = post(http_server, {"model": MODEL, "input": [LONG_TEXT, SHORT], **options})
    assert status == 200, body
    first, second = body["data"]
    assert close(np.array(first["embedding"]), alone[side])
    assert first["attnserve"] == {"tokens": CAP, "truncated": True}
    assert second["attnserve"] == {"tokens": len(SHORT.split()) + 2, "truncated": False}
    used = CAP + len(SHORT.split()) + 2  # usage counts the tokens the model saw
    assert body["usage"] == {"prompt_tokens": used, "total_tokens": used}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "over the limit of 256"),  # OpenAI's default: refuse
        ({"truncate": False}, "over the limit of 256"),
        ({"truncate": "none"}, "over the limit of 256"),
        ({"truncation_direction": "left"}, "over the limit of 256"),  # as TEI: a side only
        ({"truncate": "none", "truncation_direction": "left"}, "over the limit of 256"),
        ({"truncate": "start", "truncation_direction": "right"}, "contradicts"),
        ({"truncate": "end", "truncation_direction": "left"}, "contradicts"),
        ({"truncate": "middle"}, "'truncate' must be"),
        ({"truncate": 1}, "'truncate' must be"),
        ({"truncate": True, "truncation_direction": "up"}, "'truncation_direction' must be"),
        ({"truncate": True, "truncation_direction": 0}, "'truncation_direction' must be"),
    ],
)
def test_openai_refusals_say_why(
    http_server: ServerThread, options: dict[str, Any], words: str
) -> None:
    status, body = post(http_server, {"model": MODEL, "input": [LONG_TEXT], **options})
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert words in body["error"]["message"]


def test_the_openai_sdk_parses_the_extension_field(
    http_server: ServerThread, alone: dict[str, np.ndarray]
) -> None:
    base = f"http://127.0.0.1:{http_server.running.http_port}/v1"
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    answer = client.embeddings.create(
        model=MODEL, input=[LONG_TEXT, SHORT], extra_body={"truncation_direction": "left",
                                                           "truncate": True}
    )  # fmt: skip
    first, second = answer.data
    assert close(np.array(first.embedding), alone["tail"])
    assert first.model_extra == {"attnserve": {"tokens": CAP, "truncated": True}}
    assert second.model_extra == {"attnserve": {"tokens": 7, "truncated": False}}
    assert answer.usage.total_tokens == CAP + 7


# --- the Open Inference Protocol (raw gRPC; Triton's client in test_oip.py) ----------------


def infer(
    server: ServerThread, texts: list[str], outputs: tuple[str, ...] = (), **parameters: Any
) -> oip.ModelInferResponse:
    request = oip.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    tensor.contents.bytes_contents.extend(text.encode() for text in texts)
    for name in outputs:
        request.outputs.add(name=name)
    for name, value in parameters.items():
        kind = "bool_param" if isinstance(value, bool) else "string_param"
        request.parameters[name].CopyFrom(oip.InferParameter(**{kind: value}))
    with grpc.insecure_channel(server.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response: oip.ModelInferResponse = stub.ModelInfer(request, timeout=60)
    return response


def tensors(response: oip.ModelInferResponse) -> dict[str, np.ndarray]:
    dtypes: dict[str, Any] = {"FP32": "<f4", "INT32": "<i4", "BOOL": np.bool_}
    return {
        output.name: np.frombuffer(raw, dtype=dtypes[output.datatype]).reshape(list(output.shape))
        for output, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def test_oip_answers_every_output_when_none_is_named(
    http_server: ServerThread, alone: dict[str, np.ndarray]
) -> None:
    response = infer(http_server, [LONG_TEXT, SHORT], truncate="start")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("embedding", "FP32", [2, 384]),
        ("token_count", "INT32", [2]),
        ("truncated", "BOOL", [2]),
    ]
    got = tensors(response)
    assert close(got["embedding"][0], alone["tail"])
    assert got["token_count"].tolist() == [CAP, 7]
    assert got["truncated"].tolist() == [True, False]
    head = tensors(infer(http_server, [LONG_TEXT], truncate="end"))
    assert close(head["embedding"][0], alone["head"])
    # truncate true is "end", false refuses.
    assert close(tensors(infer(http_server, [LONG_TEXT], truncate=True))["embedding"][0],
                 alone["head"])  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        infer(http_server, [LONG_TEXT], truncate=False)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_oip_answers_the_outputs_named_in_their_order(http_server: ServerThread) -> None:
    response = infer(http_server, [LONG_TEXT, SHORT], ("truncated", "token_count"))
    assert [o.name for o in response.outputs] == ["truncated", "token_count"]
    got = tensors(response)
    assert got["truncated"].tolist() == [True, False]
    assert got["token_count"].tolist() == [CAP, 7]
    only = infer(http_server, [SHORT], ("embedding",))
    assert [o.name for o in only.outputs] == ["embedding"]
    with pytest.raises(grpc.RpcError) as caught:
        infer(http_server, [SHORT], ("embedding", "embedding"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "must not repeat" in str(caught.value.details())


def test_oip_metadata_lists_the_outputs(http_server: ServerThread) -> None:
    with grpc.insecure_channel(http_server.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        metadata = stub.ModelMetadata(oip.ModelMetadataRequest(name=MODEL), timeout=30)
        config = stub.ModelConfig(oip.ModelConfigRequest(name=MODEL), timeout=30).config
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("embedding", "FP32", [-1, 384]),
        ("token_count", "INT32", [-1]),
        ("truncated", "BOOL", [-1]),
    ]
    assert [(o.name, list(o.dims), list(o.reshape.shape)) for o in config.output] == [
        ("embedding", [384], []),
        ("token_count", [1], []),
        ("truncated", [1], []),
    ]
    assert config.output[1].HasField("reshape")
    assert not config.output[0].HasField("reshape")
