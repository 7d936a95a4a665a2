"""Explain on a reranker, end to end: each document's score as Rerank answers it, and the
rollout from CLS over the document's tokens equal (<= 1e-5) to a numpy implementation written
from the paper (Abnar & Zuidema, 2020) over transformers' eager attention maps of the same
checkpoint; what a reranker cannot explain is refused clearly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.cli import png_size, run_cli
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.pair_attention import EagerReference, spans
from tests.support.rollout import paper_rollout
from tests.support.servers import ServerThread

NAME = "xlm-roberta-reranker"


def stub(server: ServerThread) -> embedder_pb2_grpc.EmbedderStub:
    channel = grpc.insecure_channel(server.target)
    return embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]


def test_each_document_s_rollout_from_cls_equals_the_paper(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    server = reranker_servers(NAME)
    reference = EagerReference(cross_encoders(NAME))
    answer = stub(server).Explain(pb.ExplainRequest(query=QUERY, documents=DOCUMENTS))
    ranked = stub(server).Rerank(pb.RerankRequest(query=QUERY, documents=DOCUMENTS))
    scores = {result.index: result.score for result in ranked.results}
    assert [document.index for document in answer.documents] == list(range(len(DOCUMENTS)))
    for document in answer.documents:
        maps, encoded = reference.maps(QUERY, DOCUMENTS[document.index])
        start, end = spans(encoded)[1]  # the document's own tokens, by transformers' ids
        joint = paper_rollout(list(maps))
        assert list(document.tokens) == encoded.tokens(0)[start:end]
        np.testing.assert_allclose(wire.decode(document.relevance), joint[0, start:end], atol=1e-5)
        assert document.score == pytest.approx(scores[document.index], abs=1e-5)
        assert document.token_count == len(encoded.tokens(0))
    assert answer.documents[-1].truncated  # the long document, cut longest-first


def test_a_reranker_explains_rankings_only(reranker_servers: Callable[[str], ServerThread]) -> None:
    server = reranker_servers(NAME)
    for request, words in (
        (pb.ExplainRequest(texts=["a", "b"]), "is a cross-encoder"),
        (pb.ExplainRequest(texts=["a"]), "is a cross-encoder"),
        (pb.ExplainRequest(query=QUERY), "no documents"),
        (pb.ExplainRequest(documents=["d"]), "query"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub(server).Explain(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in str(refused.value.details()), refused.value.details()


def test_the_command_explains_a_ranking(
    reranker_servers: Callable[[str], ServerThread], tmp_path: Path
) -> None:
    server = reranker_servers(NAME)
    png, view = tmp_path / "ranking.png", tmp_path / "ranking.html"
    documents = [arg for document in DOCUMENTS[:2] for arg in ("--document", document)]
    shown = run_cli(
        "explain", "--target", server.target, "--query", QUERY, *documents,
        "--out", str(png), "--html", str(view),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    ranked = stub(server).Rerank(pb.RerankRequest(query=QUERY, documents=DOCUMENTS[:2]))
    for result in ranked.results:
        assert f"document {result.index}: score {result.score:.6f}" in shown.stdout
    assert png_size(png)[0] > 600
    page = view.read_text()
    start = page.index('<script id="data" type="application/json">') + 42
    data = json.loads(page[start : page.index("</script>", start)])
    assert [entry["tokens"] for entry in data["rollouts"]] == [
        list(document.tokens)
        for document in stub(server)
        .Explain(pb.ExplainRequest(query=QUERY, documents=DOCUMENTS[:2]))
        .documents
    ]
    assert len(data["views"]) == 2  # each pair's attention view beside
    assert "Attention: " in data["views"][0]["html"]  # the existing view's page
