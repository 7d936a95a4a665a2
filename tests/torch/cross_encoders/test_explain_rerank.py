"""Explain on a reranker, end to end: each document's score as Rerank answers it, and the
rollout from CLS over the document's tokens equal (<= 1e-5) to a numpy implementation written
from the paper (Abnar & Zuidema, 2020) over transformers' eager attention maps of the same
checkpoint; what a reranker cannot explain is refused clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread
from tests.torch.cross_encoders.test_pair_attention import EagerReference, spans
from tests.torch.server.test_explain import paper_rollout

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
