"""The score routes other servers' clients call: Cohere v2's /v2/rerank, Infinity's /classify
and vLLM's /v1/classify, each answering what attnserve.v1's Rerank and Classify answer for the
same inputs (scores within 1e-5), in its own server's JSON shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support.callers import post
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES, DOCUMENTS, QUERY
from tests.support.servers import ServerThread

TEXTS = [QUERY, DOCUMENTS[0], DOCUMENTS[3]]


def test_cohere_v2_rerank_equals_rerank_and_caps_each_pair(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    server = reranker_servers("bert-reranker")
    answer = post(server, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"id", "results", "meta"}
    assert body["meta"]["api_version"] == {"version": "2"}
    assert body["meta"]["tokens"]["input_tokens"] > 0
    with EmbedderClient(server.target) as client:
        expected = client.rerank(QUERY, DOCUMENTS, top_n=3)
        capped = client.rerank(QUERY, DOCUMENTS, max_tokens=16)
        every = client.rerank(QUERY, DOCUMENTS)
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    assert all(set(r) == {"index", "relevance_score"} for r in body["results"])
    for got, want in zip(body["results"], expected, strict=True):
        assert got["relevance_score"] == pytest.approx(want.score, abs=1e-5)
    short = post(server, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS,
                                        "max_tokens_per_doc": 16}).json()  # fmt: skip
    assert [r["index"] for r in short["results"]] == [r.index for r in capped]
    for got, want in zip(short["results"], capped, strict=True):
        assert got["relevance_score"] == pytest.approx(want.score, abs=1e-5)
    # Cohere's default (4096) is above the model's cap: the same as not sending it.
    default = post(server, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS,
                                          "max_tokens_per_doc": 4096}).json()  # fmt: skip
    assert [r["index"] for r in default["results"]] == [r.index for r in every]
    assert sum(r.truncated for r in capped) > sum(r.truncated for r in every)  # it cut
    for bad, words in [
        ({"query": QUERY, "documents": ["a"], "max_tokens_per_doc": 0}, "at least 1"),
        ({"query": QUERY, "documents": ["a"], "top_n": "x"}, "'top_n' must be an integer"),
        ({"query": QUERY}, "'documents' must be a list"),
    ]:
        refused = post(server, "/v2/rerank", bad)
        assert refused.status_code == 400, refused.text
        assert words in refused.json()["error"]["message"]


def test_infinity_and_vllm_classify_equal_classify(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    labels = CROSS_ENCODER_SHAPES["bert-classifier"].labels
    server = reranker_servers("bert-classifier")
    with EmbedderClient(server.target) as client:
        expected = client.classify(TEXTS)
        raw = client.classify(TEXTS, raw_scores=True)
    infinity = post(server, "/classify", {"input": TEXTS})
    assert infinity.status_code == 200, infinity.text
    body = infinity.json()
    assert body["object"] == "classify"
    assert body["model"] == "bert-classifier"
    assert body["usage"]["total_tokens"] > 0
    for got, want in zip(body["data"], expected, strict=True):
        assert [entry["label"] for entry in got] == [label for label, _ in want.labels]
        np.testing.assert_allclose(
            [entry["score"] for entry in got], [score for _, score in want.labels], atol=1e-5
        )
    logits = post(server, "/classify", {"input": TEXTS, "raw_scores": True}).json()["data"]
    for got, want in zip(logits, raw, strict=True):
        np.testing.assert_allclose(
            [entry["score"] for entry in got], [score for _, score in want.labels], atol=1e-5
        )
    vllm = post(server, "/v1/classify", {"input": TEXTS[0]})
    assert vllm.status_code == 200, vllm.text
    [item] = vllm.json()["data"]
    assert item["index"] == 0
    assert item["num_classes"] == len(labels)
    assert item["label"] == expected[0].labels[0][0]
    by_label = dict(expected[0].labels)
    np.testing.assert_allclose(item["probs"], [by_label[label] for label in labels], atol=1e-5)
    for path in ("/classify", "/v1/classify"):
        for bad in ({"input": 3}, {"input": ["a", 1]}, {}):
            refused = post(server, path, bad)
            assert refused.status_code == 400, refused.text
            assert "'input' must be a string" in refused.json()["error"]["message"]


def test_tei_root_route_runs_what_the_model_offers(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """TEI's `/` (and SageMaker's `/invocations`): a reranker reranks, a classifier predicts,
    each exactly as its own route answers; TEI's refusals in TEI's shape."""
    reranker = reranker_servers("bert-reranker")
    body = {"query": QUERY, "texts": DOCUMENTS, "return_text": True}
    expected = post(reranker, "/rerank", body).json()
    for path in ("/", "/invocations"):
        answer = post(reranker, path, body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
    assert set(expected[0]) == {"index", "score", "text"}
    classifier = reranker_servers("bert-classifier")
    pair = {"inputs": [QUERY, DOCUMENTS[0]]}
    assert post(classifier, "/", pair).json() == post(classifier, "/predict", pair).json()
    info = post_get(classifier, "/info")
    labels = CROSS_ENCODER_SHAPES["bert-classifier"].labels
    assert info["model_type"] == {
        "classifier": {
            "id2label": {str(i): label for i, label in enumerate(labels)},
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    }
    assert "reranker" in post_get(reranker, "/info")["model_type"]
    for server, path, bad, status, kind in [
        (reranker, "/rerank", {"query": QUERY, "texts": []}, 400, "Empty"),
        (reranker, "/rerank", {"query": 3, "texts": ["a"]}, 422, "Validation"),
        (classifier, "/predict", {"inputs": []}, 400, "Empty"),
        (classifier, "/predict", {"inputs": [["a", "b", "c"]]}, 422, "Validation"),
        (classifier, "/rerank", {"query": QUERY, "texts": ["a"]}, 422, "Validation"),
    ]:
        answer = post(server, path, bad)
        assert answer.status_code == status, (path, bad, answer.text)
        assert answer.json()["error_type"] == kind


def post_get(server: ServerThread, path: str) -> dict[str, Any]:
    import json
    import urllib.request

    url = f"http://127.0.0.1:{server.running.http_port}{path}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        found: dict[str, Any] = json.loads(answer.read())
        return found
