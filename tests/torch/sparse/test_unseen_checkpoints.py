"""Checkpoints no other test has seen, of other shapes and save formats, exported with the
`attnserve export` command as docs/sparse.md says and served: each matches its judge.

- SPLADE over DistilBERT (DistilBertForMaskedLM), sum pooling with OpenSearch's log1p_relu,
  saved with sentence-transformers' fill-mask `Transformer` (5.4+) instead of MLMTransformer;
- bge-m3-shaped: XLM-RoBERTa of 48 dims, 3 layers;
- ColBERT: 48 dims, 3 layers, two Dense projections with biases (48 -> 24 -> 8), expansion
  attended, query length 12, document length 24.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.cli import run_cli
from tests.support.retrieval_checkpoints import (
    QUERY,
    TEXTS,
    Sizes,
    build_bge_m3,
    build_colbert,
    build_splade,
)
from tests.support.servers import ServerThread, server_settings
from tests.torch.sparse.judges import bge_m3_judge, maxsim_judge, pylate_encode, splade_judge

WIDER = Sizes(hidden=48, layers=3, heads=4)


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("unseen")
    return {
        "splade": build_splade(
            root / "splade-distilbert", "sum", "distilbert", "log1p_relu", Sizes(48, 2, 6),
            legacy_module=False,
        ),
        "bge-m3": build_bge_m3(root / "bge-m3-48", WIDER),
        "colbert": build_colbert(
            root / "colbert-two-dense", (24, 8), 12, 24, attend_to_expansion=True,
            sizes=WIDER, bias=True,
        ),
    }  # fmt: skip


@pytest.fixture(scope="module")
def stub(
    unseen: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[embedder_pb2_grpc.EmbedderStub]:
    out = tmp_path_factory.mktemp("unseen-artifacts")
    entries = []
    for name, folder in unseen.items():
        exported = run_cli(
            "export", "--checkpoint", str(folder), "--out", str(out / name), "--no-int8",
            "--no-fp16", timeout=300,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        assert "fast.fp32.onnx" in exported.stdout  # the summary names the graph
        entries.append(f"{name}={out / name}")
    # Warmed up and calibrated, as `attnserve serve` starts by default.
    server = ServerThread(server_settings(entries, intra_op_threads=1))
    try:
        with grpc.insecure_channel(server.target) as channel:
            yield embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
    finally:
        server.stop()


def test_unseen_splade(unseen: dict[str, Path], stub: embedder_pb2_grpc.EmbedderStub) -> None:
    expected = splade_judge(unseen["splade"], TEXTS)
    response = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="splade"))
    for vector, row in zip(response.vectors, expected, strict=True):
        indices = np.asarray(vector.indices)
        np.testing.assert_array_equal(indices, np.flatnonzero(row > 0))
        np.testing.assert_allclose(vector.values, row[indices], rtol=1e-4, atol=1e-5)


def test_unseen_bge_m3(unseen: dict[str, Path], stub: embedder_pb2_grpc.EmbedderStub) -> None:
    judged = bge_m3_judge(unseen["bge-m3"], TEXTS)
    dense = wire.decode(stub.Embed(pb.EmbedRequest(texts=TEXTS, model="bge-m3")).pooled)
    assert (dense * judged["dense_vecs"]).sum(-1).min() >= 0.99999
    sparse = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="bge-m3"))
    for vector, theirs in zip(sparse.vectors, judged["lexical_weights"], strict=True):
        assert [str(i) for i in vector.indices] == sorted(theirs, key=int)
        expected = [theirs[str(i)] for i in vector.indices]
        np.testing.assert_allclose(vector.values, expected, rtol=1e-4, atol=1e-6)
    multi = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="bge-m3"))
    for result, theirs in zip(multi.results, judged["colbert_vecs"], strict=True):
        ours = wire.decode(result.vectors)
        assert ours.shape == theirs.shape
        assert (ours * theirs).sum(-1).min() >= 0.99999


def test_unseen_colbert(unseen: dict[str, Path], stub: embedder_pb2_grpc.EmbedderStub) -> None:
    folder = unseen["colbert"]
    judged_query = pylate_encode(folder, [QUERY], True)[0]
    judged_docs = pylate_encode(folder, TEXTS, False)
    query = stub.EmbedMultiVector(
        pb.MultiVectorRequest(texts=[QUERY], model="colbert", input_type=pb.INPUT_TYPE_QUERY)
    ).results[0]
    q = wire.decode(query.vectors)
    assert q.shape == judged_query.shape == (12, 8)
    assert (q * judged_query).sum(-1).min() >= 0.99999
    documents = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="colbert"))
    for result, theirs in zip(documents.results, judged_docs, strict=True):
        ours = wire.decode(result.vectors)
        assert ours.shape == theirs.shape
        assert (ours * theirs).sum(-1).min() >= 0.99999
    reranked = stub.Rerank(pb.RerankRequest(query=QUERY, documents=TEXTS, model="colbert"))
    scores = {r.index: r.score for r in reranked.results}
    expected = [maxsim_judge(judged_query, d) for d in judged_docs]
    np.testing.assert_allclose([scores[i] for i in range(len(TEXTS))], expected, rtol=1e-4)
