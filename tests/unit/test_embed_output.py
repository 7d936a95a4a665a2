"""`attnserve embed`'s formats: the people's table, the JSON document, cosine similarities."""

from __future__ import annotations

import json

import numpy as np

from attnserve.service.client.client import Embeddings
from attnserve.service.client.embed_output import (
    cosine_matrix,
    json_document,
    people_table,
    similarity_table,
)
from attnserve.v1 import embedder_pb2 as pb


def result(vectors: np.ndarray, texts: list[str] | None = None) -> tuple[list[str], Embeddings]:
    """Texts and what the client returned for them (the fields the formats read)."""
    texts = texts or [f"text number {i}" for i in range(len(vectors))]
    served = Embeddings(
        model="test/model",
        pooled=vectors.astype(np.float32),
        token_embeddings=[None] * len(texts),
        attentions=[None] * len(texts),
        token_counts=[3 + i for i in range(len(texts))],
        truncated=[i == 1 for i in range(len(texts))],
        timings=pb.Timings(queue_ms=0.1, tokenize_ms=0.2, inference_ms=0.3, total_ms=0.7),
        attention_layers=[],
        attention_heads=[],
        request_id="",
    )
    return texts, served


def test_cosine_matrix_is_the_cosine_of_every_pair() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 16))
    similarity = cosine_matrix(vectors)
    for i in range(4):
        for j in range(4):
            expected = (
                vectors[i] @ vectors[j] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[j])
            )
            assert abs(similarity[i, j] - expected) < 1e-12
    np.testing.assert_allclose(np.diag(similarity), 1.0)
    assert cosine_matrix(np.zeros((2, 3)))[0, 1] == 0.0  # no division by a zero norm


def test_the_table_has_a_row_per_text_with_its_figures() -> None:
    vectors = np.array([[3.0, 4.0, 0.0, 0.0, 0.0, 1.0], [0.5, -0.25, 0.0, 0.0, 0.0, 0.0]])
    long_text = "a very long text " * 10
    table = people_table(*result(vectors, ["short", long_text]), dims=2).splitlines()
    assert table[0] == "test/model: 2 texts, 6 dimensions"
    assert table[1].split()[:5] == ["#", "text", "tokens", "truncated", "norm"]
    first, second = table[2], table[3]
    assert first.split()[:5] == ["1", "short", "3", "no", f"{np.sqrt(26):.4f}"]
    assert first.endswith("+3.0000 +4.0000 …")  # two of six dimensions, and a sign for each
    assert "yes" in second.split()
    assert "a very long text a very long text" in second
    assert long_text.strip() not in second  # cut to fit, with an ellipsis
    assert "…" in second.split("4")[0]


def test_similarity_for_two_texts_is_one_number_and_for_more_a_matrix() -> None:
    two = similarity_table(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]))
    assert two.splitlines()[0] == "cosine similarity of 1 and 2: 0.2500"
    three = similarity_table(["a", "b", "c"], cosine_matrix(np.eye(3))).splitlines()
    assert three[0] == "cosine similarity"
    assert three[1].split() == ["1", "2", "3", "text"]
    assert three[2].split() == ["1", "1.0000", "0.0000", "0.0000", "a"]


def test_json_is_one_document_with_everything_a_program_needs() -> None:
    vectors = np.array([[0.6, 0.8], [1.0, 0.0]])
    document = json.loads(json_document(*result(vectors), cosine_matrix(vectors)))
    assert document["model"] == "test/model"
    assert document["dimensions"] == 2
    assert [t["tokens"] for t in document["texts"]] == [3, 4]
    assert [t["truncated"] for t in document["texts"]] == [False, True]
    np.testing.assert_allclose([t["embedding"] for t in document["texts"]], vectors, atol=1e-7)
    np.testing.assert_allclose(document["similarity"], [[1.0, 0.6], [0.6, 1.0]], atol=1e-7)
    assert document["timings_ms"]["total"] == 0.7
    assert "similarity" not in json.loads(json_document(*result(vectors), None))
