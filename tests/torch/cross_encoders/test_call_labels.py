"""Every call is counted under the model it reached and the task it ran: one case per RPC and
HTTP route, each naming no model wherever its API allows it (the default answers), against real
servers that serve an embedder and a reranker.

The labels are decided once (`Registry.route`: no name means the default, labelled;
`ServedModel.task`: the task labels the call as it is handed out), so no cell and no task can
forget them. A call that runs a task has both labels; one that describes a model (Info, OIP's
metadata) has the model and no task; a server-wide call (health, the model list, OIP's server
calls) has neither.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc
from attnserve.tei import tei_pb2 as tei
from attnserve.tei import tei_pb2_grpc
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread, server_settings, wait_until

EMBEDDER, RERANKER = "mini", "rr"


@pytest.fixture(scope="module")
def servers(
    artifact_dir: Path, cross_encoder_artifacts: Callable[[str], Path]
) -> Iterator[dict[str, ServerThread]]:
    """Two servers of the same two models, each with the other as its default."""
    reranker = cross_encoder_artifacts("bert-reranker")
    orders = {
        EMBEDDER: [f"{EMBEDDER}={artifact_dir}", f"{RERANKER}={reranker}"],
        RERANKER: [f"{RERANKER}={reranker}", f"{EMBEDDER}={artifact_dir}"],
    }
    started = {
        default: ServerThread(server_settings(entries, http_port=0, warmup=False))
        for default, entries in orders.items()
    }
    yield started
    for running in started.values():
        running.stop()


def v1(server: ServerThread) -> embedder_pb2_grpc.EmbedderStub:
    channel = grpc.insecure_channel(server.target)
    return embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]


def inference(server: ServerThread) -> inference_pb2_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(server.target)
    return inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]


def http(server: ServerThread, path: str, body: object | None = None) -> None:
    url = f"http://127.0.0.1:{server.running.http_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200


def tei_stub(server: ServerThread, service: str) -> Any:
    """A stub of one tei.v1 service (`tei_pb2_grpc.EmbedStub`, ...) on the server's port."""
    channel = grpc.insecure_channel(server.target)
    return getattr(tei_pb2_grpc, f"{service}Stub")(channel)


def text_tensor(name: str, texts: list[str]) -> oip.ModelInferRequest.InferInputTensor:
    return oip.ModelInferRequest.InferInputTensor(
        name=name,
        datatype="BYTES",
        shape=[len(texts)],
        contents=oip.InferTensorContents(bytes_contents=[text.encode() for text in texts]),
    )


def embed_stream(server: ServerThread) -> None:
    requests = iter([pb.EmbedRequest(texts=["a"]), pb.EmbedRequest(texts=["b", "c"])])
    assert len(list(v1(server).EmbedStream(requests))) == 2


def rerank_stream(server: ServerThread) -> None:
    requests = iter([pb.RerankRequest(query=QUERY, documents=DOCUMENTS[:2])] * 2)
    assert all(answer.response.results for answer in v1(server).RerankStream(requests))


def tei_stream(service: str, method: str, *requests: Any) -> Callable[[ServerThread], None]:
    """A tei.v1 stream of these requests, every answer read."""

    def call(server: ServerThread) -> None:
        answers = getattr(tei_stub(server, service), method)(iter(requests))
        assert len(list(answers)) == len(requests)

    return call


def tei_rerank_stream(server: ServerThread) -> None:
    requests = [tei.RerankStreamRequest(query=QUERY, text=text) for text in DOCUMENTS[:2]]
    assert len(tei_stub(server, "Rerank").RerankStream(iter(requests)).ranks) == 2


@dataclass(frozen=True)
class Case:
    protocol: str
    method: str
    default: str  # which server: the one whose default model this call reaches
    call: Callable[[ServerThread], object]
    model: str  # the labels it must be counted under
    task: str
    route: str = ""  # an HTTP route's path, for the case's name

    @property
    def name(self) -> str:
        return "-".join(filter(None, (self.protocol, self.method, self.route, self.model)))


DOC_TEXT = "The river bank was muddy after the rain."
DOCS = [{"text": DOC_TEXT, "tokens_per_chunk": 4}]
CASES = [
    # attnserve.v1: every method, naming no model.
    Case("attnserve.v1", "Embed", EMBEDDER,
         lambda s: v1(s).Embed(pb.EmbedRequest(texts=["hello"])), EMBEDDER, "embed"),
    Case("attnserve.v1", "EmbedStream", EMBEDDER, embed_stream, EMBEDDER, "embed"),
    Case("attnserve.v1", "Tokenize", EMBEDDER,
         lambda s: v1(s).Tokenize(pb.TokenizeRequest(texts=["hello"])), EMBEDDER, "tokenize"),
    Case("attnserve.v1", "Info", EMBEDDER,
         lambda s: v1(s).Info(pb.InfoRequest()), EMBEDDER, ""),
    Case("attnserve.v1", "EmbedChunks", EMBEDDER,
         lambda s: v1(s).EmbedChunks(pb.ChunkRequest(documents=[
             pb.ChunkDocument(text=DOC_TEXT, tokens_per_chunk=4)])),
         EMBEDDER, "late_chunking"),
    Case("attnserve.v1", "Rerank", RERANKER,
         lambda s: v1(s).Rerank(pb.RerankRequest(query=QUERY, documents=DOCUMENTS[:2])),
         RERANKER, "rerank"),
    Case("attnserve.v1", "RerankStream", RERANKER, rerank_stream, RERANKER, "rerank"),
    Case("attnserve.v1", "Classify", RERANKER,
         lambda s: v1(s).Classify(pb.ClassifyRequest(texts=["hello"])), RERANKER, "classify"),
    Case("attnserve.v1", "Explain", EMBEDDER,
         lambda s: v1(s).Explain(pb.ExplainRequest(texts=["hello", "hi there"])),
         EMBEDDER, "explain"),
    Case("attnserve.v1", "Explain", RERANKER,
         lambda s: v1(s).Explain(pb.ExplainRequest(query=QUERY, documents=DOCUMENTS[:2])),
         RERANKER, "explain"),
    # OIP: a request must name its model.
    Case("oip", "ModelInfer", EMBEDDER,
         lambda s: inference(s).ModelInfer(oip.ModelInferRequest(
             model_name=EMBEDDER, inputs=[text_tensor("text", ["hello"])])),
         EMBEDDER, "embed"),
    Case("oip", "ModelInfer", RERANKER,
         lambda s: inference(s).ModelInfer(oip.ModelInferRequest(
             model_name=RERANKER,
             inputs=[text_tensor("query", [QUERY]), text_tensor("documents", DOCUMENTS[:2])])),
         RERANKER, "rerank"),
    Case("oip", "ModelMetadata", EMBEDDER,
         lambda s: inference(s).ModelMetadata(oip.ModelMetadataRequest(name=RERANKER)),
         RERANKER, ""),
    Case("oip", "ModelConfig", EMBEDDER,
         lambda s: inference(s).ModelConfig(oip.ModelConfigRequest(name=EMBEDDER)),
         EMBEDDER, ""),
    Case("oip", "ModelReady", EMBEDDER,
         lambda s: inference(s).ModelReady(oip.ModelReadyRequest(name=EMBEDDER)), EMBEDDER, ""),
    Case("oip", "ServerReady", EMBEDDER,
         lambda s: inference(s).ServerReady(oip.ServerReadyRequest()), "", ""),
    Case("oip", "RepositoryIndex", EMBEDDER,
         lambda s: inference(s).RepositoryIndex(oip.RepositoryIndexRequest()), "", ""),
    # tei.v1: a request names no model; each goes to the first model that answers it
    # (Tokenize, Decode and Info: the default).
    Case("tei.v1", "Embed", RERANKER,
         lambda s: tei_stub(s, "Embed").Embed(tei.EmbedRequest(inputs="hello")),
         EMBEDDER, "embed"),
    Case("tei.v1", "EmbedAll", RERANKER,
         lambda s: tei_stub(s, "Embed").EmbedAll(tei.EmbedAllRequest(inputs="hello")),
         EMBEDDER, "embed"),
    Case("tei.v1", "Tokenize", EMBEDDER,
         lambda s: tei_stub(s, "Tokenize").Tokenize(tei.EncodeRequest(inputs="hello")),
         EMBEDDER, "tokenize"),
    Case("tei.v1", "Decode", RERANKER,
         lambda s: tei_stub(s, "Tokenize").Decode(tei.DecodeRequest(ids=[5, 6])),
         RERANKER, "decode"),
    Case("tei.v1", "Info", RERANKER,
         lambda s: tei_stub(s, "Info").Info(tei.InfoRequest()), RERANKER, ""),
    Case("tei.v1", "Rerank", EMBEDDER,
         lambda s: tei_stub(s, "Rerank").Rerank(tei.RerankRequest(query=QUERY,
                                                                  texts=DOCUMENTS[:2])),
         RERANKER, "rerank"),
    Case("tei.v1", "Predict", EMBEDDER,
         lambda s: tei_stub(s, "Predict").Predict(tei.PredictRequest(inputs="hello")),
         RERANKER, "classify"),
    Case("tei.v1", "PredictPair", EMBEDDER,
         lambda s: tei_stub(s, "Predict").PredictPair(
             tei.PredictPairRequest(inputs=[QUERY, DOCUMENTS[0]])),
         RERANKER, "classify"),
    Case("tei.v1", "EmbedStream", RERANKER,
         tei_stream("Embed", "EmbedStream", tei.EmbedRequest(inputs="a"),
                    tei.EmbedRequest(inputs="b")), EMBEDDER, "embed"),
    Case("tei.v1", "EmbedAllStream", RERANKER,
         tei_stream("Embed", "EmbedAllStream", tei.EmbedAllRequest(inputs="a")),
         EMBEDDER, "embed"),
    Case("tei.v1", "PredictStream", EMBEDDER,
         tei_stream("Predict", "PredictStream", tei.PredictRequest(inputs="a")),
         RERANKER, "classify"),
    Case("tei.v1", "PredictPairStream", EMBEDDER,
         tei_stream("Predict", "PredictPairStream", tei.PredictPairRequest(inputs=["a", "b"])),
         RERANKER, "classify"),
    Case("tei.v1", "RerankStream", EMBEDDER, tei_rerank_stream, RERANKER, "rerank"),
    Case("tei.v1", "TokenizeStream", EMBEDDER,
         tei_stream("Tokenize", "TokenizeStream", tei.EncodeRequest(inputs="a")),
         EMBEDDER, "tokenize"),
    Case("tei.v1", "DecodeStream", EMBEDDER,
         tei_stream("Tokenize", "DecodeStream", tei.DecodeRequest(ids=[5])),
         EMBEDDER, "decode"),
    # HTTP: every route defaults.
    Case("openai", "embeddings", EMBEDDER,
         lambda s: http(s, "/v1/embeddings", {"input": ["hello"]}),
         EMBEDDER, "embed", "/v1/embeddings"),
    Case("openai", "embeddings", EMBEDDER,
         lambda s: http(s, "/embeddings", {"input": "hello"}), EMBEDDER, "embed", "/embeddings"),
    Case("http", "rerank", RERANKER,
         lambda s: http(s, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS[:2]}),
         RERANKER, "rerank", "/v2/rerank"),
    Case("http", "classify", RERANKER,
         lambda s: http(s, "/classify", {"input": ["hello"]}), RERANKER, "classify", "/classify"),
    Case("http", "classify", RERANKER,
         lambda s: http(s, "/v1/classify", {"input": "hello"}),
         RERANKER, "classify", "/v1/classify"),
    Case("openai", "models", EMBEDDER, lambda s: http(s, "/v1/models"), "", "", "/v1/models"),
    Case("http", "rerank", RERANKER,
         lambda s: http(s, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS[:2]}),
         RERANKER, "rerank", "/v1/rerank"),
    Case("http", "rerank", RERANKER,
         lambda s: http(s, "/rerank", {"query": QUERY, "texts": DOCUMENTS[:2]}),
         RERANKER, "rerank", "/rerank"),
    Case("http", "predict", RERANKER,
         lambda s: http(s, "/predict", {"inputs": "hello"}), RERANKER, "classify", "/predict"),
    # TEI's routes: `/` (and SageMaker's /invocations) runs what the default model offers.
    Case("http", "invocations", EMBEDDER,
         lambda s: http(s, "/", {"inputs": "hello"}), EMBEDDER, "embed", "/"),
    Case("http", "invocations", RERANKER,
         lambda s: http(s, "/invocations", {"query": QUERY, "texts": DOCUMENTS[:2]}),
         RERANKER, "rerank", "/invocations"),
    Case("http", "embed", EMBEDDER,
         lambda s: http(s, "/embed", {"inputs": ["hello"]}), EMBEDDER, "embed", "/embed"),
    Case("http", "embed_all", EMBEDDER,
         lambda s: http(s, "/embed_all", {"inputs": "hello"}), EMBEDDER, "embed", "/embed_all"),
    Case("http", "similarity", EMBEDDER,
         lambda s: http(s, "/similarity",
                        {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
         EMBEDDER, "embed", "/similarity"),
    Case("http", "tokenize", EMBEDDER,
         lambda s: http(s, "/tokenize", {"inputs": "hello"}), EMBEDDER, "tokenize", "/tokenize"),
    Case("http", "decode", RERANKER,
         lambda s: http(s, "/decode", {"ids": [5, 6]}), RERANKER, "decode", "/decode"),
    Case("http", "info", RERANKER, lambda s: http(s, "/info"), RERANKER, "", "/info"),
    Case("http", "late_chunking", EMBEDDER,
         lambda s: http(s, "/v1/late_chunking", {"documents": DOCS}),
         EMBEDDER, "late_chunking", "/v1/late_chunking"),
    Case("http", "explain", EMBEDDER,
         lambda s: http(s, "/v1/explain", {"texts": ["hello"]}),
         EMBEDDER, "explain", "/v1/explain"),
    Case("http", "explain", RERANKER,
         lambda s: http(s, "/v1/explain", {"query": QUERY, "documents": DOCUMENTS[:2]}),
         RERANKER, "explain", "/v1/explain"),
]  # fmt: skip


def counted(
    registry: CollectorRegistry, protocol: str, method: str
) -> dict[tuple[str, str], float]:
    """attnserve_requests_total for one protocol and method, by (model, task) label."""
    counts: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "attnserve_requests_total"
                and labels.get("protocol") == protocol
                and labels.get("method") == method
                and labels.get("code") == "OK"
            ):
                key = (labels["model"], labels["task"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_call_is_counted_under_its_model_and_task(
    case: Case, servers: dict[str, ServerThread]
) -> None:
    server = servers[case.default]
    registry = server.running.assembly.metrics.registry
    before = counted(registry, case.protocol, case.method)
    case.call(server)
    key = (case.model, case.task)

    def grown() -> bool:
        return counted(registry, case.protocol, case.method).get(key, 0.0) > before.get(key, 0.0)

    assert wait_until(grown), (key, counted(registry, case.protocol, case.method))
    after = counted(registry, case.protocol, case.method)
    # Counted once, under exactly these labels: no other label pair grew.
    grew = {k: v - before.get(k, 0.0) for k, v in after.items() if v > before.get(k, 0.0)}
    assert grew == {key: 1.0}
