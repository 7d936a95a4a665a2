"""Cross-encoders served end to end: Rerank and Classify over attnserve.v1 (the typed client) and
the HTTP rerank routes (an outside HTTP client) answer sentence-transformers' CrossEncoder scores
(<= 1e-5, the same ranking) on random BERT and XLM-RoBERTa checkpoints; bad input is refused
clearly; an embedder refuses rerank and a reranker refuses embed, naming what each offers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from attnserve.service.client.client import EmbedderClient
from tests.support.callers import HttpAnswer, post
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES, DOCUMENTS, QUERY
from tests.support.servers import ServerThread

RERANKERS = ("bert-reranker", "xlm-roberta-reranker")
MANY_DOCUMENTS = [f"{document} ({i})" for i in range(15) for document in DOCUMENTS]  # 105


def cross_encoder(folder: Path) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device="cpu")


def expected_scores(folder: Path, documents: list[str], raw: bool = False) -> np.ndarray:
    model = cross_encoder(folder)
    activation = torch.nn.Identity() if raw else None
    pairs = [(QUERY, document) for document in documents]
    return np.asarray(model.predict(pairs, activation_fn=activation), dtype=np.float64)


def by_index(ranked: list[Any], n: int) -> np.ndarray:
    scores = np.full(n, np.nan)
    for result in ranked:
        scores[result.index] = result.score
    return scores


def assert_same_ranking(served: list[int], expected: np.ndarray) -> None:
    """The served order sorts the expected scores (ties, if any, in either order)."""
    ordered = expected[served]
    assert np.all(np.diff(ordered) <= 1e-6), (served, expected)


@pytest.mark.parametrize("name", RERANKERS)
def test_rerank_equals_cross_encoder(
    name: str,
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    server = reranker_servers(name)
    expected = expected_scores(cross_encoders(name), MANY_DOCUMENTS)
    with EmbedderClient(server.target) as client:
        ranked = client.rerank(QUERY, MANY_DOCUMENTS, return_documents=True)
        raw = client.rerank(QUERY, MANY_DOCUMENTS, raw_scores=True, top_n=5)
        info = client.info()
    assert sorted(r.index for r in ranked) == list(range(len(MANY_DOCUMENTS)))
    np.testing.assert_allclose(by_index(ranked, len(MANY_DOCUMENTS)), expected, atol=1e-5)
    assert_same_ranking([r.index for r in ranked], expected)
    assert all(r.document == MANY_DOCUMENTS[r.index] for r in ranked)
    logits = expected_scores(cross_encoders(name), MANY_DOCUMENTS, raw=True)
    assert [r.index for r in raw] == [r.index for r in ranked[:5]]
    np.testing.assert_allclose([r.score for r in raw], logits[[r.index for r in raw]], atol=1e-5)
    long_ones = [r for r in ranked if "truncated longest first" in MANY_DOCUMENTS[r.index]]
    assert long_ones
    assert all(r.truncated for r in long_ones)
    assert (list(info.tasks), list(info.labels)) == (["explain", "score"], ["LABEL_0"])
    assert info.limits.max_documents_per_request == 1000


def test_a_thousand_documents_come_back_merged_in_order(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """1000 pairs span at least 16 model batches (max_batch_texts 64), merged back in order."""
    server = reranker_servers("bert-reranker")
    documents = [f"{DOCUMENTS[i % 6]} number {i}" for i in range(1000)]
    with EmbedderClient(server.target) as client:
        ranked = client.rerank(QUERY, documents)
    expected = expected_scores(cross_encoders("bert-reranker"), documents)
    np.testing.assert_allclose(by_index(ranked, 1000), expected, atol=1e-5)
    assert_same_ranking([r.index for r in ranked], expected)


@pytest.mark.parametrize("name", ["bert-classifier", "xlm-roberta-tagger"])
def test_classify_equals_cross_encoder(
    name: str,
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    shape = CROSS_ENCODER_SHAPES[name]
    model = cross_encoder(cross_encoders(name))
    pairs = [(QUERY, document) for document in DOCUMENTS]
    logits = np.asarray(model.predict(pairs, activation_fn=torch.nn.Identity()))
    if shape.multi_label:
        expected = 1 / (1 + np.exp(-logits))
    else:
        expected = np.asarray(model.predict(pairs, apply_softmax=True))
    singles = DOCUMENTS[:3]
    single_logits = np.asarray(  # one text at a time: CrossEncoder reads a list of two as a pair
        [model.predict(text, activation_fn=torch.nn.Identity()) for text in singles]
    )
    with EmbedderClient(reranker_servers(name).target) as client:
        classified = client.classify(pairs)
        top = client.classify(pairs, top_k=1, raw_scores=True)
        alone = client.classify(singles, raw_scores=True)
        with pytest.raises(grpc.RpcError) as refused:
            client.rerank(QUERY, DOCUMENTS)
    for row, result in enumerate(classified):
        scores = dict(result.labels)
        assert list(scores) == sorted(scores, key=lambda label: -scores[label])  # best first
        served = [scores[label] for label in shape.labels]
        np.testing.assert_allclose(served, expected[row], atol=1e-5)
        best = int(np.argmax(logits[row]))
        assert top[row].labels[0][0] == shape.labels[best]
        assert top[row].labels[0][1] == pytest.approx(float(logits[row, best]), abs=1e-5)
    for row, result in enumerate(alone):  # single texts: the single-text template
        served = [dict(result.labels)[label] for label in shape.labels]
        np.testing.assert_allclose(served, single_logits[row], atol=1e-5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rerank needs a one-score model" in (refused.value.details() or "")


def test_bad_rerank_requests_are_refused_clearly(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    server = reranker_servers("bert-reranker")
    cases: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
        ({"documents": []}, grpc.StatusCode.INVALID_ARGUMENT, "no documents"),
        ({"documents": ["x"] * 1001}, grpc.StatusCode.INVALID_ARGUMENT, "at most 1000 documents"),
        ({"documents": ["a", ""]}, grpc.StatusCode.INVALID_ARGUMENT, "document 1 is empty"),
        ({"documents": ["a"], "query": ""}, grpc.StatusCode.INVALID_ARGUMENT, "query is empty"),
        ({"documents": [DOCUMENTS[-1]], "truncate": "none"}, grpc.StatusCode.INVALID_ARGUMENT,
         "over the limit of 128"),
        ({"documents": ["a"], "model": "nope"}, grpc.StatusCode.NOT_FOUND, "'nope' not found"),
    ]  # fmt: skip
    with EmbedderClient(server.target) as client:
        for case, code, message in cases:
            arguments = {"query": QUERY, **case}
            with pytest.raises(grpc.RpcError) as refused:
                client.rerank(arguments.pop("query"), arguments.pop("documents"), **arguments)
            assert refused.value.code() == code, case
            assert message in (refused.value.details() or ""), (case, refused.value.details())
        with pytest.raises(grpc.RpcError) as refused:
            client.embed(["a text"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not offer embed (it offers: explain, score)" in (refused.value.details() or "")


def test_an_embedder_refuses_rerank_naming_its_tasks(server: ServerThread) -> None:
    with EmbedderClient(server.target) as client, pytest.raises(grpc.RpcError) as refused:
        client.rerank(QUERY, DOCUMENTS)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not offer rerank (it offers: embed, explain, late_chunking)" in (
        refused.value.details() or ""
    )


@pytest.mark.parametrize("name", RERANKERS)
def test_http_rerank_routes_answer_cross_encoder_scores(
    name: str,
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """Cohere/Jina's /v1/rerank and text-embeddings-inference's /rerank, with an HTTP client."""
    server = reranker_servers(name)
    expected = expected_scores(cross_encoders(name), DOCUMENTS)
    logits = expected_scores(cross_encoders(name), DOCUMENTS, raw=True)
    body = {"model": name, "query": QUERY, "documents": DOCUMENTS, "top_n": 3,
            "return_documents": True}  # fmt: skip
    cohere = post(server, "/v1/rerank", body)
    assert cohere.status_code == 200, cohere.text
    answer = cohere.json()
    assert answer["model"] == name
    assert answer["usage"]["total_tokens"] > 0
    results = answer["results"]
    assert [r["index"] for r in results] == list(np.argsort(-expected, kind="stable")[:3])
    for result in results:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
    tei = post(server, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
    assert tei.status_code == 200, tei.text
    ranked = tei.json()
    assert_same_ranking([r["index"] for r in ranked], logits)
    np.testing.assert_allclose(by_index_json(ranked, len(DOCUMENTS)), logits, atol=1e-5)


def post_raw(server: ServerThread, path: str, data: bytes) -> HttpAnswer:
    """POST bytes as they come, JSON or not."""
    import aiohttp

    async def send() -> HttpAnswer:
        url = f"http://127.0.0.1:{server.running.http_port}{path}"
        headers = {"Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=data, headers=headers) as answer,
        ):
            return HttpAnswer(answer.status, await answer.text())

    return asyncio.run(send())


def by_index_json(ranked: list[dict[str, Any]], n: int) -> np.ndarray:
    scores = np.full(n, np.nan)
    for result in ranked:
        scores[result["index"]] = result["score"]
    return scores


def test_http_predict_and_bad_requests(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    shape = CROSS_ENCODER_SHAPES["bert-classifier"]
    server = reranker_servers("bert-classifier")
    model = cross_encoder(cross_encoders("bert-classifier"))
    pair = [QUERY, DOCUMENTS[0]]
    expected = np.asarray(model.predict([tuple(pair)], apply_softmax=True))[0]
    one = post(server, "/predict", {"inputs": pair})
    assert one.status_code == 200, one.text
    scores = {entry["label"]: entry["score"] for entry in one.json()}
    np.testing.assert_allclose([scores[label] for label in shape.labels], expected, atol=1e-5)
    batch = post(server, "/predict", {"inputs": [pair, pair]})
    assert len(batch.json()) == 2
    refused = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert refused.status_code == 400
    assert "rerank needs a one-score model" in refused.json()["error"]["message"]
    reranker = reranker_servers("bert-reranker")
    for body, status, message in [
        ({"query": QUERY, "documents": []}, 400, "no documents"),
        ({"query": QUERY, "documents": ["a"] * 1001}, 400, "at most 1000 documents"),
        ({"query": QUERY, "documents": "a"}, 400, "'documents' must be a list"),
        ({"query": QUERY, "documents": ["a"], "model": "nope"}, 404, "'nope' not found"),
        ({"documents": ["a"]}, 400, "'query' must be a string"),
    ]:
        answer = post(reranker, "/v1/rerank", body)
        assert answer.status_code == status, (body, answer.text)
        assert message in answer.json()["error"]["message"]
    # Bodies no JSON parser should crash on: not JSON is 400 everywhere; JSON that is not an
    # object is 400 on Cohere's route and 422 (TEI's Validation) on TEI's.
    for path, unusable in (("/v1/rerank", 400), ("/rerank", 422), ("/predict", 422)):
        for raw, status in ((b"[" * 100_000, 400), (b"{not json", 400), (b'["a", 1]', unusable)):
            answer = post_raw(reranker, path, raw)
            assert answer.status_code == status, (path, raw[:10], answer.text)


def test_the_rerank_command_prints_a_ranked_table(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    from tests.support.cli import run_cli

    server = reranker_servers("bert-reranker")
    documents = DOCUMENTS[:4]
    expected = expected_scores(cross_encoders("bert-reranker"), documents)
    done = run_cli("rerank", "--target", server.target, QUERY, *documents, console=True)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.strip().splitlines()
    assert header.split() == ["rank", "score", "index", "document"]
    indexes = [int(row.split()[2]) for row in rows]
    assert indexes == list(np.argsort(-expected, kind="stable"))
    for position, row in enumerate(rows, start=1):
        rank, score, index, *_ = row.split()
        assert int(rank) == position
        assert float(score) == pytest.approx(expected[int(index)], abs=1e-5)
    refused = run_cli("rerank", "--target", server.target, QUERY, "")
    assert refused.returncode == 1
    assert "INVALID_ARGUMENT: document 0 is empty" in refused.stderr


def test_oip_reranks_for_tritonclient(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """The reranker as an OIP model: BYTES query and documents in, FP32 scores out, asked by
    Triton's own client (in its own environment, .venv-triton)."""
    import subprocess

    from tests.support import ROOT
    from tests.support.cli import unavailable

    python = ROOT / ".venv-triton" / "bin" / "python"
    if not python.exists():
        unavailable("tritonclient's environment .venv-triton is missing")
    server = reranker_servers("xlm-roberta-reranker")
    script = Path(__file__).with_name("oip_rerank_with_tritonclient.py")
    done = subprocess.run(
        [str(python), str(script), server.target, "xlm-roberta-reranker", QUERY, *DOCUMENTS],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["inputs"] == [["query", "BYTES"], ["documents", "BYTES"]]
    assert answer["outputs"] == [["scores", "FP32"]]
    folder = cross_encoders("xlm-roberta-reranker")
    np.testing.assert_allclose(answer["scores"], expected_scores(folder, DOCUMENTS), atol=1e-5)
    logits = expected_scores(folder, DOCUMENTS, raw=True)
    np.testing.assert_allclose(answer["logits"], logits, atol=1e-5)


def test_rerank_stream_answers_each_request_as_rerank_does(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """RerankStream: many Rerank requests on one call, answered (in any order) exactly as the
    unary call answers each; a bad one fails inline with its status and the stream goes on."""
    from attnserve.v1 import embedder_pb2 as pb
    from attnserve.v1 import embedder_pb2_grpc as pb_grpc

    server = reranker_servers("bert-reranker")
    asks = {
        f"r{i}": pb.RerankRequest(
            query=QUERY,
            documents=MANY_DOCUMENTS[i * 7 : i * 7 + 9],
            top_n=i % 3,
            request_id=f"r{i}",
        )
        for i in range(8)
    }
    bad = pb.RerankRequest(query=QUERY, documents=[], request_id="bad")
    with EmbedderClient(server.target) as client:
        stub = pb_grpc.EmbedderStub(client.channel)  # type: ignore[no-untyped-call]
        answers = list(stub.RerankStream(iter([*asks.values(), bad]), timeout=60))
        unary = {rid: stub.Rerank(request, timeout=60) for rid, request in asks.items()}
    by_id = {answer.request_id: answer for answer in answers}
    assert sorted(by_id) == sorted([*asks, "bad"])
    for rid, expected in unary.items():
        streamed = by_id[rid]
        assert not streamed.HasField("error")
        assert streamed.response.request_id == rid
        assert [r.index for r in streamed.response.results] == [r.index for r in expected.results]
        np.testing.assert_allclose(
            [r.score for r in streamed.response.results], [r.score for r in expected.results],
            atol=1e-6,
        )  # fmt: skip
    assert by_id["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "the request has no documents" in by_id["bad"].error.message
    assert not by_id["bad"].HasField("response")
