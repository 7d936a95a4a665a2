"""The retrieval heads served: one server with a dense embedder, a SPLADE model, a bge-m3 model
and a ColBERT model, each answering over attnserve.v1 (EmbedSparse, EmbedMultiVector, Embed,
Rerank by MaxSim) as its judge does (tests/torch/sparse/judges.py) and exactly as it does served
alone; tasks a model does not offer, and requests over the limits, get a clear refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.retrieval_checkpoints import QUERY, TEXTS
from tests.support.servers import ServerThread, server_settings
from tests.torch.sparse.judges import bge_m3_judge, maxsim_judge, pylate_encode, splade_judge

ONE_THREAD = {"intra_op_threads": 1, "warmup": False}
NAMES = ("dense", "splade", "bge-m3", "colbert")


@pytest.fixture(scope="module")
def artifacts(
    retrieval_artifacts: Callable[[str], Path],
    encoder_checkpoints: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    from attnserve.export.artifact import build_artifact

    dense = tmp_path_factory.mktemp("dense") / "distilbert"
    build_artifact(dense, encoder_checkpoints("distilbert"), int8=False, fp16=False)
    return {
        "dense": dense,
        "splade": retrieval_artifacts("splade-max"),
        "bge-m3": retrieval_artifacts("bge-m3"),
        "colbert": retrieval_artifacts("colbert"),
    }


@pytest.fixture(scope="module")
def combined(artifacts: dict[str, Path]) -> Iterator[ServerThread]:
    entries = [f"{name}={artifacts[name]}" for name in NAMES]
    settings = {**ONE_THREAD, "intra_op_threads": 2, "http_port": 0}
    server = ServerThread(server_settings(entries, **settings))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub(combined: ServerThread) -> Iterator[embedder_pb2_grpc.EmbedderStub]:
    with grpc.insecure_channel(combined.target) as channel:
        yield embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]


def sparse_of(vector: pb.SparseVector) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(vector.indices), np.asarray(vector.values, dtype=np.float32)


def test_splade_sparse_vectors_equal_sparse_encoder(
    stub: embedder_pb2_grpc.EmbedderStub, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    response = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="splade"))
    expected = splade_judge(retrieval_checkpoints("splade-max"), TEXTS)
    assert response.vocab_size == expected.shape[1]
    for vector, row in zip(response.vectors, expected, strict=True):
        indices, values = sparse_of(vector)
        np.testing.assert_array_equal(indices, np.flatnonzero(row > 0))
        np.testing.assert_allclose(values, row[indices], rtol=1e-4, atol=1e-5)


def test_top_k_min_weight_and_words(
    stub: embedder_pb2_grpc.EmbedderStub, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    request = pb.SparseRequest(
        texts=TEXTS, model="splade", top_k=5, min_weight=1.0, return_tokens=True
    )
    response = stub.EmbedSparse(request)
    expected = splade_judge(retrieval_checkpoints("splade-max"), TEXTS)
    from tokenizers import Tokenizer

    vocabulary = Tokenizer.from_file(str(retrieval_checkpoints("splade-max") / "tokenizer.json"))
    for vector, row in zip(response.vectors, expected, strict=True):
        indices, _ = sparse_of(vector)
        best = np.argsort(-row, kind="stable")[:5]
        wanted = np.sort(best[row[best] > 1.0])
        np.testing.assert_array_equal(indices, wanted)
        assert list(np.diff(indices) > 0) == [True] * (len(indices) - 1)  # sorted by index
        assert list(vector.tokens) == [vocabulary.id_to_token(int(i)) for i in indices]


def test_bge_m3_dense_sparse_and_multi_vectors_equal_flag_embedding(
    stub: embedder_pb2_grpc.EmbedderStub, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    judged = bge_m3_judge(retrieval_checkpoints("bge-m3"), TEXTS)
    dense = wire.decode(stub.Embed(pb.EmbedRequest(texts=TEXTS, model="bge-m3")).pooled)
    assert (dense * judged["dense_vecs"]).sum(-1).min() >= 0.99999
    sparse = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="bge-m3"))
    for vector, theirs in zip(sparse.vectors, judged["lexical_weights"], strict=True):
        indices, values = sparse_of(vector)
        assert [str(i) for i in indices] == sorted(theirs, key=int)
        expected = np.array([theirs[str(i)] for i in indices], dtype=np.float32)
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-6)
    vectors = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="bge-m3"))
    for result, theirs in zip(vectors.results, judged["colbert_vecs"], strict=True):
        ours = wire.decode(result.vectors)
        assert ours.shape == theirs.shape
        assert (ours * theirs).sum(-1).min() >= 0.99999


def test_colbert_vectors_spans_and_maxsim_rerank_equal_pylate(
    stub: embedder_pb2_grpc.EmbedderStub, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    folder = retrieval_checkpoints("colbert")
    query = stub.EmbedMultiVector(
        pb.MultiVectorRequest(texts=[QUERY], model="colbert", input_type=pb.INPUT_TYPE_QUERY)
    ).results[0]
    documents = stub.EmbedMultiVector(pb.MultiVectorRequest(texts=TEXTS, model="colbert"))
    judged_query = pylate_encode(folder, [QUERY], True)[0]
    judged_docs = pylate_encode(folder, TEXTS, False)
    q = wire.decode(query.vectors)
    assert q.shape == judged_query.shape  # expanded to the query length
    assert (q * judged_query).sum(-1).min() >= 0.99999
    for text, result, theirs in zip(TEXTS, documents.results, judged_docs, strict=True):
        ours = wire.decode(result.vectors)
        assert ours.shape == theirs.shape
        assert (ours * theirs).sum(-1).min() >= 0.99999
        spans = [(s.start, s.end) for s in result.spans]
        assert len(spans) == len(ours) == len(result.token_ids)
        words = [text[a:b].lower() for a, b in spans if b > a]
        assert words  # the text's own tokens, by their place in it
        assert all(word and word in text.lower() for word in words)
    reranked = stub.Rerank(pb.RerankRequest(query=QUERY, documents=TEXTS, model="colbert"))
    expected = [maxsim_judge(judged_query, d) for d in judged_docs]
    scores = {r.index: r.score for r in reranked.results}
    np.testing.assert_allclose([scores[i] for i in range(len(TEXTS))], expected, rtol=1e-4)
    assert [r.index for r in reranked.results] == sorted(
        range(len(TEXTS)), key=lambda i: -expected[i]
    )
    top = stub.Rerank(pb.RerankRequest(query=QUERY, documents=TEXTS, model="colbert", top_n=2))
    assert [r.index for r in top.results] == [r.index for r in reranked.results[:2]]


@pytest.mark.parametrize(
    ("call", "model", "says"),
    [
        ("EmbedSparse", "colbert", "does not offer embed_sparse"),
        ("EmbedSparse", "dense", "does not offer embed_sparse"),
        ("EmbedMultiVector", "splade", "does not offer embed_multi_vector"),
        ("Embed", "splade", "does not offer embed"),
        ("Rerank", "bge-m3", "does not offer rerank"),
        ("Classify", "colbert", "has no labels to classify"),
    ],
)
def test_a_task_a_model_does_not_offer_is_refused_by_name(
    stub: embedder_pb2_grpc.EmbedderStub, call: str, model: str, says: str
) -> None:
    requests = {
        "EmbedSparse": pb.SparseRequest(texts=["a"], model=model),
        "EmbedMultiVector": pb.MultiVectorRequest(texts=["a"], model=model),
        "Embed": pb.EmbedRequest(texts=["a"], model=model),
        "Rerank": pb.RerankRequest(query="a", documents=["b"], model=model),
        "Classify": pb.ClassifyRequest(texts=["a"], model=model),
    }
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, call)(requests[call])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in str(caught.value.details())


def test_bad_options_and_oversized_answers_are_refused(
    artifacts: dict[str, Path], stub: embedder_pb2_grpc.EmbedderStub
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.EmbedSparse(pb.SparseRequest(texts=["a"], model="splade", min_weight=-1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = pb.MultiVectorRequest(texts=["a"], model="colbert")
    unknown.input_type = 7  # type: ignore[assignment]  # a newer client's value
    with pytest.raises(grpc.RpcError) as caught:
        stub.EmbedMultiVector(unknown)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    small = server_settings(
        [f"colbert={artifacts['colbert']}", f"splade={artifacts['splade']}"],
        max_send_message_bytes=4096, **ONE_THREAD,
    )  # fmt: skip
    server = ServerThread(small)
    try:
        with grpc.insecure_channel(server.target) as channel:
            tight = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
            for call, request in (
                (tight.EmbedMultiVector, pb.MultiVectorRequest(texts=TEXTS, model="colbert")),
                (tight.EmbedSparse, pb.SparseRequest(texts=TEXTS, model="splade")),
            ):
                with pytest.raises(grpc.RpcError) as caught:
                    call(request)
                assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "max_send_message_bytes" in str(caught.value.details())
            fits = tight.EmbedSparse(pb.SparseRequest(texts=TEXTS[:2], model="splade", top_k=3))
            assert [len(v.indices) for v in fits.vectors] == [3, 3]
    finally:
        server.stop()


def test_each_model_answers_as_alone(
    artifacts: dict[str, Path], stub: embedder_pb2_grpc.EmbedderStub
) -> None:
    info = stub.Info(pb.InfoRequest(model="colbert"))
    assert list(info.models) == list(NAMES)
    assert set(info.tasks) == {"embed_multi_vector", "score"}
    for name in NAMES:
        server = ServerThread(server_settings(artifacts[name], model_name=name, **ONE_THREAD))
        try:
            with grpc.insecure_channel(server.target) as channel:
                alone = embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]
                if name in ("dense", "bge-m3"):
                    request = pb.EmbedRequest(texts=TEXTS, model=name)
                    assert alone.Embed(request).pooled == stub.Embed(request).pooled
                if name in ("splade", "bge-m3"):
                    sparse = pb.SparseRequest(texts=TEXTS, model=name)
                    ours, theirs = alone.EmbedSparse(sparse), stub.EmbedSparse(sparse)
                    for a, b in zip(ours.vectors, theirs.vectors, strict=True):
                        assert list(a.indices) == list(b.indices)
                        np.testing.assert_allclose(a.values, b.values, rtol=1e-6, atol=1e-7)
                if name in ("colbert", "bge-m3"):
                    multi = pb.MultiVectorRequest(texts=TEXTS, model=name)
                    ours_m, theirs_m = alone.EmbedMultiVector(multi), stub.EmbedMultiVector(multi)
                    for a, b in zip(ours_m.results, theirs_m.results, strict=True):
                        np.testing.assert_allclose(
                            wire.decode(a.vectors), wire.decode(b.vectors), atol=1e-6
                        )
        finally:
            server.stop()


def test_colbert_reranks_through_every_rerank_api(
    combined: ServerThread, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    """MaxSim through the score task: attnserve.v1's Rerank (above), OIP's ModelInfer, Cohere's
    /v1/rerank and TEI's /rerank answer the same scores."""
    from attnserve.oip import inference_pb2 as oip
    from attnserve.oip import inference_pb2_grpc
    from tests.support.callers import post

    folder = retrieval_checkpoints("colbert")
    judged_query = pylate_encode(folder, [QUERY], True)[0]
    expected = [maxsim_judge(judged_query, d) for d in pylate_encode(folder, TEXTS, False)]
    request = oip.ModelInferRequest(model_name="colbert", id="maxsim")
    query = request.inputs.add(name="query", datatype="BYTES", shape=[1])
    query.contents.bytes_contents.append(QUERY.encode())
    documents = request.inputs.add(name="documents", datatype="BYTES", shape=[len(TEXTS)])
    documents.contents.bytes_contents.extend(text.encode() for text in TEXTS)
    with grpc.insecure_channel(combined.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response = stub.ModelInfer(request, timeout=60)
    scores = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    np.testing.assert_allclose(scores, expected, rtol=1e-4)  # in document order
    cohere = post(combined, "/v1/rerank", {"model": "colbert", "query": QUERY, "documents": TEXTS})
    assert cohere.status_code == 200, cohere.text
    by_index = {r["index"]: r["relevance_score"] for r in cohere.json()["results"]}
    np.testing.assert_allclose([by_index[i] for i in range(len(TEXTS))], expected, rtol=1e-4)
    tei = post(combined, "/rerank", {"model": "colbert", "query": QUERY, "texts": TEXTS})
    assert tei.status_code == 200, tei.text
    by_index = {r["index"]: r["score"] for r in tei.json()}
    np.testing.assert_allclose([by_index[i] for i in range(len(TEXTS))], expected, rtol=1e-4)


def test_embed_sparse_command_prints_the_heaviest_terms_as_words(
    combined: ServerThread, retrieval_checkpoints: Callable[[str], Path]
) -> None:
    """`attnserve embed --sparse`: each text's top terms, as the tokenizer's strings, heaviest
    first, and the typed client's multi-vector call beside it."""
    import json

    from tokenizers import Tokenizer

    from attnserve.service.client.client import EmbedderClient
    from tests.support.cli import run_cli

    folder = retrieval_checkpoints("splade-max")
    texts = TEXTS[:2]
    done = run_cli("embed", "--target", combined.target, "--model", "splade", "--sparse",
                   "--terms", "3", *texts)  # fmt: skip
    assert done.returncode == 0, done.stderr
    vocabulary = Tokenizer.from_file(str(folder / "tokenizer.json"))
    expected = splade_judge(folder, texts)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(texts)
    for line, row in zip(lines, expected, strict=True):
        words = [vocabulary.id_to_token(int(i)) for i in np.argsort(-row, kind="stable")[:3]]
        shown = [term.rsplit(" ", 1)[0] for term in line.split(": ", 1)[1].split(", ")]
        assert shown == words
        assert f"({int((row > 0).sum())} terms)" in line
    as_json = run_cli("embed", "--target", combined.target, "--model", "splade", "--sparse",
                      "--json", *texts)  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert [d["indices"] for d in document] == [np.flatnonzero(r > 0).tolist() for r in expected]
    refused = run_cli("embed", "--target", combined.target, "--model", "colbert", "--sparse", "a")
    assert refused.returncode == 1
    assert "does not offer embed_sparse" in refused.stderr
    with EmbedderClient(combined.target) as client:
        query = client.embed_multi_vector([QUERY], model="colbert", query=True)[0]
        judged = pylate_encode(retrieval_checkpoints("colbert"), [QUERY], True)[0]
        assert (query.vectors * judged).sum(-1).min() >= 0.99999
        assert len(query.token_ids) == len(query.spans) == len(judged)


def test_splade_over_oip_answers_csr_sparse_vectors(
    combined: ServerThread, stub: embedder_pb2_grpc.EmbedderStub
) -> None:
    """OIP's sparse kind: the texts' vectors as offsets, indices and values, equal to
    EmbedSparse's; metadata names those outputs; a bad parameter is refused."""
    from attnserve.oip import inference_pb2 as oip
    from attnserve.oip import inference_pb2_grpc

    request = oip.ModelInferRequest(model_name="splade", id="csr")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(TEXTS)])
    tensor.contents.bytes_contents.extend(text.encode() for text in TEXTS)
    request.parameters["top_k"].int64_param = 7
    with grpc.insecure_channel(combined.target) as channel:
        inference = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        response = inference.ModelInfer(request, timeout=60)
        metadata = inference.ModelMetadata(oip.ModelMetadataRequest(name="splade"), timeout=60)
        request.parameters["top_k"].int64_param = 0
        with pytest.raises(grpc.RpcError) as caught:
            inference.ModelInfer(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [o.name for o in metadata.outputs] == [o.name for o in response.outputs]
    raw = dict(zip([o.name for o in response.outputs], response.raw_output_contents, strict=True))
    offsets = np.frombuffer(raw["sparse_offsets"], dtype="<i8")
    indices = np.frombuffer(raw["sparse_indices"], dtype="<i8")
    values = np.frombuffer(raw["sparse_values"], dtype="<f4")
    expected = stub.EmbedSparse(pb.SparseRequest(texts=TEXTS, model="splade", top_k=7))
    assert len(offsets) == len(TEXTS) + 1
    for row, vector in enumerate(expected.vectors):
        start, end = offsets[row], offsets[row + 1]
        assert indices[start:end].tolist() == list(vector.indices)
        np.testing.assert_array_equal(values[start:end], np.asarray(vector.values, "<f4"))
