"""Each retrieval head exported (export/retrieval_graphs.py): one fused graph with the model's
outputs, named by a version-5 manifest, and its ONNX Runtime answers against the judges
(tests/torch/sparse/judges.py) -- SPLADE's (B, V) reduced in the graph, bge-m3's three outputs,
ColBERT's vectors and MaxSim."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from attnserve.service import multi_vector
from attnserve.service.artifact import RETRIEVAL_FORMAT_VERSION, Manifest, verify
from attnserve.service.sessions import open_session
from attnserve.service.sparse import from_tokens, from_vocabulary
from tests.support.retrieval_checkpoints import QUERY, TEXTS
from tests.torch.sparse.judges import bge_m3_judge, maxsim_judge, pylate_encode, splade_judge


def run_graph(
    artifact: Path, manifest: Manifest, texts: list[str], is_query: bool = False
) -> tuple[dict[str, np.ndarray], list[multi_vector.PreparedText]]:
    """The artifact's graph over texts tokenized from its own tokenizer.json and manifest."""
    graph = manifest.graphs[0]
    tokenizer = Tokenizer.from_file(str(artifact / manifest.tokenizer.file))
    tokenizer.no_padding()
    spec = manifest.multi_vector
    cap = manifest.tokenizer.default_max_tokens
    if spec is not None:
        cap = multi_vector.token_cap(spec, is_query, cap)
    tokenizer.enable_truncation(max_length=cap)
    prepared = [
        multi_vector.prepare(e.ids, spec, is_query)
        if spec is not None
        else multi_vector.PreparedText(list(e.ids), [1] * len(e.ids))
        for e in tokenizer.encode_batch(texts)
    ]
    feeds = multi_vector.batch(prepared, manifest.tokenizer.pad_token_id)
    session = open_session(artifact / graph.file)
    values = session.run(list(graph.outputs), {name: feeds[name] for name in graph.inputs})
    return dict(zip(graph.outputs, values, strict=True)), prepared


def fused(manifest: Manifest) -> None:
    graph = manifest.graphs[0]
    assert graph.op_counts.get("com.microsoft.Attention") == 2  # both layers fused
    assert manifest.format_version == RETRIEVAL_FORMAT_VERSION
    assert len(manifest.graphs) == 1


@pytest.mark.parametrize("name", ["splade-max", "splade-xlm-roberta"])
def test_splade_artifact_reduces_in_the_graph_and_matches_sparse_encoder(
    name: str,
    retrieval_checkpoints: Callable[[str], Path],
    retrieval_artifacts: Callable[[str], Path],
) -> None:
    artifact = retrieval_artifacts(name)
    manifest = verify(artifact)
    fused(manifest)
    assert manifest.graphs[0].outputs == ("sparse_weights",)
    assert manifest.sparse is not None
    assert (manifest.sparse.kind, manifest.sparse.reduction) == ("vocabulary", "max")
    assert manifest.multi_vector is None
    assert manifest.dense is False
    assert manifest.graphs[0].parity["sparse_terms_differing"] == 0
    outputs, _ = run_graph(artifact, manifest, TEXTS)
    rows = outputs["sparse_weights"]
    assert rows.shape == (len(TEXTS), manifest.model.vocab_size)  # (B, V): no per-token rows
    expected = splade_judge(retrieval_checkpoints(name), TEXTS)
    for row in range(len(TEXTS)):
        ours, theirs = from_vocabulary(rows[row]), from_vocabulary(expected[row])
        np.testing.assert_array_equal(ours.indices, theirs.indices)
        np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-4, atol=1e-5)


def test_bge_m3_artifact_matches_flag_embedding(
    retrieval_checkpoints: Callable[[str], Path], retrieval_artifacts: Callable[[str], Path]
) -> None:
    artifact = retrieval_artifacts("bge-m3")
    manifest = verify(artifact)
    fused(manifest)
    names = ("token_embeddings", "pooled", "token_weights", "multi_vectors")
    assert manifest.graphs[0].outputs == names
    assert manifest.sparse is not None
    assert manifest.multi_vector is not None
    assert manifest.multi_vector.skip_first
    assert manifest.dense
    outputs, prepared = run_graph(artifact, manifest, TEXTS)
    judged = bge_m3_judge(retrieval_checkpoints("bge-m3"), TEXTS)
    pooled = outputs["pooled"] / np.linalg.norm(outputs["pooled"], axis=-1, keepdims=True)
    assert (pooled * judged["dense_vecs"]).sum(-1).min() >= 0.99999
    for row, text in enumerate(prepared):
        n = len(text.ids)
        ours = from_tokens(text.ids, outputs["token_weights"][row, :n], manifest.sparse.dropped_ids)
        theirs = judged["lexical_weights"][row]
        assert [str(i) for i in ours.indices] == sorted(theirs, key=int)
        expected = np.array([theirs[str(i)] for i in ours.indices], dtype=np.float32)
        np.testing.assert_allclose(ours.values, expected, rtol=1e-4, atol=1e-6)
        kept = multi_vector.kept_rows(text, manifest.multi_vector, is_query=False)
        vectors = outputs["multi_vectors"][row][kept]
        assert vectors.shape == judged["colbert_vecs"][row].shape
        assert (vectors * judged["colbert_vecs"][row]).sum(-1).min() >= 0.99999


@pytest.mark.parametrize("name", ["colbert", "colbert-attended"])
def test_colbert_artifact_matches_pylate(
    name: str,
    retrieval_checkpoints: Callable[[str], Path],
    retrieval_artifacts: Callable[[str], Path],
) -> None:
    artifact = retrieval_artifacts(name)
    manifest = verify(artifact)
    fused(manifest)
    spec = manifest.multi_vector
    assert spec is not None
    assert manifest.sparse is None
    assert spec.query_length == 16
    assert spec.attend_to_expansion is (name == "colbert-attended")
    folder = retrieval_checkpoints(name)
    vectors: dict[bool, list[np.ndarray]] = {}
    for texts, is_query in (([QUERY], True), (TEXTS, False)):
        outputs, prepared = run_graph(artifact, manifest, texts, is_query)
        ours = [
            outputs["multi_vectors"][row][multi_vector.kept_rows(text, spec, is_query)]
            for row, text in enumerate(prepared)
        ]
        theirs = pylate_encode(folder, texts, is_query)
        for mine, judged in zip(ours, theirs, strict=True):
            assert mine.shape == judged.shape
            assert (mine * judged).sum(-1).min() >= 0.99999
        vectors[is_query] = ours
    judged_query = pylate_encode(folder, [QUERY], True)[0]
    judged_docs = pylate_encode(folder, TEXTS, False)
    ours_scores = [multi_vector.maxsim(vectors[True][0], d) for d in vectors[False]]
    their_scores = [maxsim_judge(judged_query, d) for d in judged_docs]
    np.testing.assert_allclose(ours_scores, their_scores, rtol=1e-4)
