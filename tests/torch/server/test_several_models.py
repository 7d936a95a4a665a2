"""One server, two models: the packaged all-MiniLM-L6-v2 (the default) and a random RoBERTa
checkpoint of another shape (64 dims, BPE), each answering through every API exactly as it
does served alone; names route right, wrong names are refused naming the served ones, and
/metrics counts each model under its own label.

(When the cross-encoder work lands, a reranker joins the combined server here: the seam is
`MODELS` and the `combined` fixture.)
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc
from attnserve.service.client.client import EmbedderClient
from attnserve.service.server.app import log_startup
from tests.support.artifacts import ArtifactCache
from tests.support.servers import ServerThread, server_settings
from tests.support.texts import VARIED_TEXTS

TEXTS = VARIED_TEXTS[:6]
MINI, SECOND = "mini", "roberta"
# One intra-op thread per model in each server (the combined one shares its 2 among its two
# models), so the same sessions run the same batches with the same threads: equal bits.
ALONE = {"intra_op_threads": 1, "http_port": 0, "warmup": False}


@pytest.fixture(scope="module")
def second_artifact(encoder_checkpoints: Callable[[str], Path], artifacts: ArtifactCache) -> Path:
    return artifacts.get(encoder_checkpoints("roberta"), int8=False, fp16=False)


@pytest.fixture(scope="module")
def alone(artifact_dir: Path, second_artifact: Path) -> Iterator[dict[str, ServerThread]]:
    servers = {
        MINI: ServerThread(server_settings(artifact_dir, model_name=MINI, **ALONE)),
        SECOND: ServerThread(server_settings(second_artifact, model_name=SECOND, **ALONE)),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def combined(artifact_dir: Path, second_artifact: Path) -> Iterator[ServerThread]:
    artifacts = [f"{MINI}={artifact_dir}", f"{SECOND}={second_artifact}"]
    running = ServerThread(server_settings(artifacts, **{**ALONE, "intra_op_threads": 2}))
    yield running
    running.stop()


def oip_call(server: ServerThread, method: str, request: Any) -> Any:
    with grpc.insecure_channel(server.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        return getattr(stub, method)(request, timeout=60)


def oip_vectors(server: ServerThread, model: str) -> np.ndarray:
    request = oip.ModelInferRequest(model_name=model, id="several")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(TEXTS)])
    tensor.contents.bytes_contents.extend(text.encode() for text in TEXTS)
    request.outputs.add(name="embedding")  # alone (none named: token_count and truncated too)
    response = oip_call(server, "ModelInfer", request)
    assert response.model_name == model
    (output,) = response.outputs
    return np.frombuffer(response.raw_output_contents[0], "<f4").reshape(list(output.shape))


def http(server: ServerThread, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"http://127.0.0.1:{server.running.http_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def openai_vectors(server: ServerThread, model: str) -> np.ndarray:
    status, body = http(server, "/v1/embeddings", {"model": model, "input": TEXTS,
                                                  "truncate": True})  # fmt: skip
    assert status == 200, body
    assert body["model"] == model
    return np.array([item["embedding"] for item in body["data"]], dtype=np.float32)


@pytest.mark.parametrize("name", [MINI, SECOND])
def test_each_model_answers_through_every_api_as_it_does_alone(
    name: str, alone: dict[str, ServerThread], combined: ServerThread
) -> None:
    own = alone[name]
    with EmbedderClient(combined.target) as both, EmbedderClient(own.target) as single:
        served = both.embed(TEXTS, model=name, token_embeddings=True)
        expected = single.embed(TEXTS, token_embeddings=True)
        assert served.model == expected.model
        assert served.pooled is not None
        assert expected.pooled is not None
        np.testing.assert_array_equal(served.pooled, expected.pooled)
        for got, want in zip(served.token_embeddings, expected.token_embeddings, strict=True):
            np.testing.assert_array_equal(got, want)
        assert served.token_counts == expected.token_counts
        assert both.tokenize(TEXTS, model=name) == single.tokenize(TEXTS)
        info, alone_info = both.info(name), single.info()
        for field in ("model_name", "hidden_size", "family", "artifact_sha256", "pooling"):
            assert getattr(info, field) == getattr(alone_info, field), field
        assert info.model == name
        assert list(info.models) == [MINI, SECOND]
        assert list(info.tasks) == ["embed", "explain", "late_chunking"]
    np.testing.assert_array_equal(oip_vectors(combined, name), oip_vectors(own, name))
    np.testing.assert_array_equal(openai_vectors(combined, name), openai_vectors(own, name))
    metadata = oip_call(combined, "ModelMetadata", oip.ModelMetadataRequest(name=name))
    assert metadata == oip_call(own, "ModelMetadata", oip.ModelMetadataRequest(name=name))
    assert oip_call(combined, "ModelReady", oip.ModelReadyRequest(name=name)).ready


def test_the_default_is_the_first_and_every_api_lists_both(combined: ServerThread) -> None:
    with EmbedderClient(combined.target) as client:
        default = client.embed(TEXTS[:1])
        assert default.model == "sentence-transformers/all-MiniLM-L6-v2"
        assert client.info().model == MINI
        assert client.embed(TEXTS[:1], model=SECOND).pooled.shape == (1, 64)  # type: ignore[union-attr]
    status, body = http(combined, "/v1/models")
    assert status == 200
    assert [entry["id"] for entry in body["data"]] == [MINI, SECOND]
    index = oip_call(combined, "RepositoryIndex", oip.RepositoryIndexRequest(ready=True))
    assert [(m.name, m.state) for m in index.models] == [(MINI, "READY"), (SECOND, "READY")]
    statistics = oip_call(combined, "ModelStatistics", oip.ModelStatisticsRequest())
    assert [entry.name for entry in statistics.model_stats] == [MINI, SECOND]
    assert oip_call(combined, "ServerReady", oip.ServerReadyRequest()).ready


def test_a_name_not_served_is_refused_naming_the_served_ones(combined: ServerThread) -> None:
    served = f"this server serves '{MINI}', '{SECOND}'"
    with EmbedderClient(combined.target) as client:
        for call in (
            lambda: client.embed(TEXTS[:1], model="nope"),
            lambda: client.tokenize(TEXTS[:1], model="nope"),
            lambda: client.info("nope"),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert served in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as refused:
        oip_vectors(combined, "nope")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert served in str(refused.value.details())
    assert not oip_call(combined, "ModelReady", oip.ModelReadyRequest(name="nope")).ready
    status, body = http(combined, "/v1/embeddings", {"model": "nope", "input": "x"})
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    assert served in body["error"]["message"]


def test_the_start_up_log_has_a_line_per_model_with_its_memory(
    combined: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="attnserve")
    log_startup(combined.running)
    lines = [record.getMessage() for record in caplog.records]
    for name in (MINI, SECOND):
        (line,) = [line for line in lines if line.startswith(f"model {name!r}")]
        assert "tasks embed" in line
        assert re.search(r"memory \d+ MiB \(RSS added", line), line
    assert any(line.startswith(f"model {MINI!r} (default)") for line in lines)
    assert any(line.startswith("process RSS ") for line in lines)
    # MiniLM's two fp32 sessions hold its weights twice (~90 MiB each); the tiny RoBERTa's few
    # hundred KiB can land in memory the first load freed, so only MiniLM's share is bounded.
    assert combined.running.assembly.models.find(MINI).rss_bytes > 100 << 20


def test_metrics_count_each_model_under_its_own_label(combined: ServerThread) -> None:
    with EmbedderClient(combined.target) as client:
        client.embed(TEXTS[:2], model=SECOND)
    url = f"http://127.0.0.1:{combined.running.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for model in (MINI, SECOND):
        assert f'attnserve_model_ready{{model="{model}"}} 1.0' in text
        assert f'attnserve_input_tokens_total{{model="{model}"}}' in text
        assert f'attnserve_batch_size_texts_count{{model="{model}"}}' in text
    assert 'checkpoint="sentence-transformers/all-MiniLM-L6-v2"' in text
    assert (
        'attnserve_requests_total{code="OK",method="Embed",model="roberta",'
        'protocol="attnserve.v1",task="embed"}' in text
    )
    assert 'model="nope"' not in text
