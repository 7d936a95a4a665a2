"""TEI's `/embed_sparse` (and `/` on a SPLADE model, as TEI dispatches it) over the embed_sparse
task: the same terms and weights as attnserve.v1's EmbedSparse, in TEI's answer shape
[[{"index", "value"}]]; a model without a sparse head gets TEI's 424, a prompt a clear 422."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.callers import post
from tests.support.retrieval_checkpoints import TEXTS
from tests.support.servers import ServerThread, server_settings


@pytest.fixture(scope="module")
def server(
    retrieval_artifacts: Callable[[str], Path],
    encoder_checkpoints: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerThread]:
    from attnserve.export.artifact import build_artifact

    dense = tmp_path_factory.mktemp("tei-sparse-dense") / "distilbert"
    build_artifact(dense, encoder_checkpoints("distilbert"), int8=False, fp16=False)
    entries = [
        f"dense={dense}",  # the default: TEI's routes without `model` reach it
        f"splade={retrieval_artifacts('splade-max')}",
        f"bge-m3={retrieval_artifacts('bge-m3')}",
    ]
    running = ServerThread(server_settings(entries, http_port=0, warmup=False))
    yield running
    running.stop()


def served_v1(server: ServerThread, model: str, texts: list[str]) -> list[dict[int, float]]:
    with grpc.insecure_channel(server.target) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
        response = stub.EmbedSparse(pb.SparseRequest(texts=texts, model=model), timeout=60)
    return [dict(zip(v.indices, v.values, strict=True)) for v in response.vectors]


def as_terms(answer: list[dict[str, float]]) -> dict[int, float]:
    indices = [int(term["index"]) for term in answer]
    assert indices == sorted(indices)  # TEI's order: by index
    return {int(term["index"]): float(term["value"]) for term in answer}


@pytest.mark.parametrize("model", ["splade", "bge-m3"])
def test_embed_sparse_answers_the_v1_terms_in_tei_shape(server: ServerThread, model: str) -> None:
    # truncate: the long text is cut at its end, as v1 cuts by default
    answer = post(server, "/embed_sparse", {"inputs": TEXTS, "model": model, "truncate": True})
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    expected = served_v1(server, model, TEXTS)
    assert len(rows) == len(TEXTS)
    for row, terms in zip(rows, expected, strict=True):
        assert all(set(term) == {"index", "value"} for term in row)
        got = as_terms(row)
        assert got  # a real text has terms
        assert got.keys() == terms.keys()  # every non-zero term, none invented
        np.testing.assert_allclose([got[i] for i in terms], list(terms.values()), rtol=1e-6)


def test_one_string_input_and_the_root_route_on_a_splade_model(server: ServerThread) -> None:
    single = post(server, "/embed_sparse", {"inputs": TEXTS[1], "model": "splade"})
    root = post(server, "/", {"inputs": TEXTS[1], "model": "splade"})  # TEI: `/` -> sparse
    assert single.status_code == root.status_code == 200, (single.text, root.text)
    assert single.json() == root.json()
    assert as_terms(single.json()[0]) == pytest.approx(served_v1(server, "splade", TEXTS[1:2])[0])


def test_a_dense_model_and_a_prompt_are_refused_as_tei_does(server: ServerThread) -> None:
    dense = post(server, "/embed_sparse", {"inputs": "hello"})
    assert dense.status_code == 424
    assert dense.json()["error_type"] == "Backend"
    assert "only available for SPLADE" in dense.json()["error"]
    prompted = post(
        server, "/embed_sparse", {"inputs": "hello", "model": "splade", "prompt_name": "query"}
    )
    assert prompted.status_code == 422, prompted.text
    assert "prompt" in prompted.json()["error"]
    assert post(server, "/embed", {"inputs": "still serving"}).status_code == 200
