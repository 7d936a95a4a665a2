"""The rerank clients people run, unchanged, against one attnserve server serving a reranker
beside the embedder: each ranking and score equals attnserve.v1's Rerank (scores within 1e-5).

| library | call | route |
| cohere | Client(base_url=url).rerank (v1) | POST /v1/rerank |
| cohere | ClientV2(base_url=url).rerank | POST /v2/rerank |
| langchain-cohere | CohereRerank(base_url=url).rerank (ClientV2 inside) | POST /v2/rerank |
| llama-index (cohere-rerank) | CohereRerank(base_url=url).postprocess_nodes | POST /v2/rerank |
| llama-index (tei-rerank) | TextEmbeddingInference(base_url=url).postprocess_nodes | POST /rerank |
"""

from __future__ import annotations

from typing import Any

import pytest

from attnserve.service.client.client import EmbedderClient
from tests.clients.conftest import RERANKER, http_base
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread


def native(server: ServerThread, top_n: int = 0) -> list[tuple[int, float]]:
    with EmbedderClient(server.target) as client:
        ranked = client.rerank(QUERY, DOCUMENTS, top_n=top_n, model=RERANKER)
    return [(result.index, result.score) for result in ranked]


def assert_same(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [index for index, _ in got] == [index for index, _ in expected]
    for (_, score), (_, want) in zip(got, expected, strict=True):
        assert score == pytest.approx(want, abs=1e-5)


def test_cohere_v1_client(pod: ServerThread) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.Client(api_key="unused", base_url=http_base(pod))
    answer = client.rerank(model=RERANKER, query=QUERY, documents=DOCUMENTS, top_n=3)
    got = [(result.index, result.relevance_score) for result in answer.results]
    assert_same(got, native(pod, top_n=3))


def test_cohere_v2_client(pod: ServerThread) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="unused", base_url=http_base(pod))
    answer = client.rerank(model=RERANKER, query=QUERY, documents=DOCUMENTS, top_n=4)
    got = [(result.index, result.relevance_score) for result in answer.results]
    assert_same(got, native(pod, top_n=4))
    assert answer.meta is not None


def test_langchain_cohere_rerank(pod: ServerThread) -> None:
    rerank = pytest.importorskip("langchain_cohere")
    reranker: Any = rerank.CohereRerank(
        cohere_api_key="unused", base_url=http_base(pod), model=RERANKER, top_n=3
    )
    results = reranker.rerank(documents=DOCUMENTS, query=QUERY)
    got = [(result["index"], result["relevance_score"]) for result in results]
    assert_same(got, native(pod, top_n=3))
    documents = pytest.importorskip("langchain_core.documents")
    compressed = reranker.compress_documents(
        [documents.Document(page_content=text) for text in DOCUMENTS], QUERY
    )
    assert [d.page_content for d in compressed] == [DOCUMENTS[i] for i, _ in native(pod, 3)]


def nodes_and_query() -> tuple[list[Any], Any]:
    schema = pytest.importorskip("llama_index.core.schema")
    nodes = [schema.NodeWithScore(node=schema.TextNode(text=text)) for text in DOCUMENTS]
    return nodes, schema.QueryBundle(QUERY)


def test_llama_index_cohere_rerank(pod: ServerThread) -> None:
    module = pytest.importorskip("llama_index.postprocessor.cohere_rerank")
    nodes, query = nodes_and_query()
    reranker = module.CohereRerank(
        top_n=3, model=RERANKER, api_key="unused", base_url=http_base(pod)
    )
    ranked = reranker.postprocess_nodes(nodes, query_bundle=query)
    expected = native(pod, top_n=3)
    assert [node.node.text for node in ranked] == [DOCUMENTS[i] for i, _ in expected]
    for node, (_, score) in zip(ranked, expected, strict=True):
        assert node.score == pytest.approx(score, abs=1e-5)


def test_llama_index_tei_rerank(reranker_pod: ServerThread) -> None:
    module = pytest.importorskip("llama_index.postprocessor.tei_rerank")
    nodes, query = nodes_and_query()
    reranker = module.TextEmbeddingInference(top_n=3, base_url=http_base(reranker_pod))
    ranked = reranker.postprocess_nodes(nodes, query_bundle=query)
    expected = native(reranker_pod, top_n=3)
    assert [node.node.text for node in ranked] == [DOCUMENTS[i] for i, _ in expected]
    for node, (_, score) in zip(ranked, expected, strict=True):
        assert node.score == pytest.approx(score, abs=1e-5)
