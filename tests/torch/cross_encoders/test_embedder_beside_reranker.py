"""One server, three models, as a retrieval pod runs them: the packaged all-MiniLM-L6-v2 (the
default), a second embedder (a random RoBERTa) and a reranker. Each answers through attnserve.v1,
OIP and HTTP exactly as it does served alone; names route right; a task a model does not offer,
and a name nobody serves, are refused naming what is there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc
from attnserve.service.client.client import EmbedderClient
from tests.support.artifacts import ArtifactCache
from tests.support.callers import post
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread, server_settings
from tests.support.texts import VARIED_TEXTS

MINI, SECOND, RERANKER = "mini", "roberta", "rr"
TEXTS = VARIED_TEXTS[:5]
# One intra-op thread per model in every server, so the combined server runs each model's
# batches with the same threads as the lone ones: equal bits.
SETTINGS = {"intra_op_threads": 1, "http_port": 0, "warmup": False}


@pytest.fixture(scope="module")
def pod_artifacts(
    artifact_dir: Path,
    encoder_checkpoints: Callable[[str], Path],
    cross_encoder_artifacts: Callable[[str], Path],
    artifacts: ArtifactCache,
) -> dict[str, Path]:
    second = artifacts.get(encoder_checkpoints("roberta"), int8=False, fp16=False)
    reranker = cross_encoder_artifacts("bert-reranker")
    return {MINI: artifact_dir, SECOND: second, RERANKER: reranker}


@pytest.fixture(scope="module")
def alone(pod_artifacts: dict[str, Path]) -> Iterator[dict[str, ServerThread]]:
    servers = {
        name: ServerThread(server_settings(path, model_name=name, **SETTINGS))
        for name, path in pod_artifacts.items()
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def pod(pod_artifacts: dict[str, Path]) -> Iterator[ServerThread]:
    entries = [f"{name}={path}" for name, path in pod_artifacts.items()]
    threads = {**SETTINGS, "intra_op_threads": len(entries)}  # one per model
    running = ServerThread(server_settings(entries, **threads))
    yield running
    running.stop()


def oip_vectors(server: ServerThread, model: str) -> np.ndarray:
    request = oip.ModelInferRequest(model_name=model, id="pod")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(TEXTS)])
    tensor.contents.bytes_contents.extend(text.encode() for text in TEXTS)
    request.outputs.add(name="embedding")  # alone (none named: token_count and truncated too)
    with grpc.insecure_channel(server.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response = stub.ModelInfer(request, timeout=60)
    (output,) = response.outputs
    return np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(output.shape)


def test_each_embedder_answers_as_it_does_alone(
    pod: ServerThread, alone: dict[str, ServerThread]
) -> None:
    for name in (MINI, SECOND):
        with EmbedderClient(pod.target) as together, EmbedderClient(alone[name].target) as lone:
            served, expected = together.embed(TEXTS, model=name), lone.embed(TEXTS)
        assert served.pooled is not None
        assert expected.pooled is not None
        np.testing.assert_array_equal(served.pooled, expected.pooled)
        np.testing.assert_array_equal(oip_vectors(pod, name), oip_vectors(alone[name], name))
        body = {"model": name, "input": TEXTS}
        together_http, lone_http = (
            post(pod, "/v1/embeddings", body),
            post(alone[name], "/v1/embeddings", body),
        )
        assert together_http.status_code == 200, together_http.text
        assert together_http.json()["data"] == lone_http.json()["data"]


def test_the_reranker_answers_as_it_does_alone(
    pod: ServerThread, alone: dict[str, ServerThread]
) -> None:
    with EmbedderClient(pod.target) as together, EmbedderClient(alone[RERANKER].target) as lone:
        served = together.rerank(QUERY, DOCUMENTS, model=RERANKER)
        expected = lone.rerank(QUERY, DOCUMENTS)
    assert [(r.index, r.score) for r in served] == [(r.index, r.score) for r in expected]
    body = {"model": RERANKER, "query": QUERY, "documents": DOCUMENTS}
    together_http, lone_http = (
        post(pod, "/v1/rerank", body),
        post(alone[RERANKER], "/v1/rerank", body),
    )
    assert together_http.status_code == 200, together_http.text
    assert together_http.json()["results"] == lone_http.json()["results"]


def test_wrong_tasks_and_names_are_refused_naming_what_is_served(pod: ServerThread) -> None:
    with EmbedderClient(pod.target) as client:
        with pytest.raises(grpc.RpcError) as embed_a_reranker:
            client.embed(TEXTS, model=RERANKER)
        with pytest.raises(grpc.RpcError) as rerank_an_embedder:
            client.rerank(QUERY, DOCUMENTS, model=MINI)
        with pytest.raises(grpc.RpcError) as unknown:
            client.embed(TEXTS, model="nobody")
    for refused in (embed_a_reranker, rerank_an_embedder):
        error = refused.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "offers" in error.details()
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    for name in (MINI, SECOND, RERANKER):
        assert repr(name) in unknown.value.details()
    wrong_route = post(pod, "/v1/rerank", {"model": MINI, "query": QUERY, "documents": DOCUMENTS})
    assert wrong_route.status_code == 400, wrong_route.text
    missing = post(pod, "/v1/embeddings", {"model": "nobody", "input": TEXTS})
    assert missing.status_code == 404, missing.text
