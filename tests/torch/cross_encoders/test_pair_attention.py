"""A pair's attention maps through the score task: Rerank and Classify with attention answer
transformers' eager attention probabilities of the same checkpoint (<= 1e-5) for every pair,
with the layers and heads selected and averaged as Embed does, the pair's tokens, and where the
query ends and the document begins (the tokenizer's own sequence ids); the calls are counted
under their task."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient, PairMaps
from tests.support.callers import post
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.pair_attention import MAX_LENGTH, EagerReference, spans
from tests.support.servers import ServerThread, metric, wait_until


def check_pair(served: PairMaps | None, expected: np.ndarray, encoded: Any) -> None:
    assert served is not None
    assert served.maps.shape == expected.shape
    np.testing.assert_allclose(served.maps, expected, atol=1e-5, rtol=0)
    assert served.tokens == encoded.tokens(0)
    assert served.segments == spans(encoded)


def test_rerank_serves_each_pairs_exact_maps(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    name = "xlm-roberta-reranker"
    server = reranker_servers(name)
    reference = EagerReference(cross_encoders(name))
    with EmbedderClient(server.target) as client:
        plain = client.rerank(QUERY, DOCUMENTS)
        ranked = client.rerank(QUERY, DOCUMENTS, attention=True)
        chosen = client.rerank(QUERY, DOCUMENTS, attention=True, layers=[1, 0], heads=[2])
        averaged = client.rerank(
            QUERY, DOCUMENTS[:2], attention=True, layers=[1], heads=[3, 0], average_heads=True
        )
    assert all(result.attention is None for result in plain)  # maps only when asked for
    # The maps graph scores the pairs as the fast graph does.
    assert [r.index for r in ranked] == [r.index for r in plain]
    np.testing.assert_allclose([r.score for r in ranked], [r.score for r in plain], atol=1e-5)
    for result in ranked:
        expected, encoded = reference.maps(QUERY, DOCUMENTS[result.index])
        check_pair(result.attention, expected, encoded)
        assert result.attention is not None
        assert (result.attention.layers, result.attention.heads) == ([0, 1], [0, 1, 2, 3])
        assert len(result.attention.tokens) == result.token_count
        (q0, q1), (d0, d1) = result.attention.segments
        assert result.attention.cross_block.shape == (2, 4, q1 - q0, d1 - d0)
    long_one = next(r for r in ranked if r.index == len(DOCUMENTS) - 1)
    assert long_one.truncated
    assert long_one.token_count == MAX_LENGTH
    for result in chosen:
        expected, encoded = reference.maps(QUERY, DOCUMENTS[result.index])
        check_pair(result.attention, expected[[1, 0]][:, [2]], encoded)
        assert result.attention is not None
        assert (result.attention.layers, result.attention.heads) == ([1, 0], [2])
    for result in averaged:
        expected, encoded = reference.maps(QUERY, DOCUMENTS[result.index])
        check_pair(result.attention, expected[[1]][:, [3, 0]].mean(axis=1, keepdims=True), encoded)
        assert result.attention is not None
        assert result.attention.heads == [3, 0]


def test_classify_serves_the_maps_of_pairs_and_single_texts(
    cross_encoders: Callable[[str], Path],
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    """BERT (token types 0 then 1) through Classify: pairs, and single texts (one segment)."""
    name = "bert-classifier"
    reference = EagerReference(cross_encoders(name))
    pairs = [(QUERY, document) for document in DOCUMENTS[:4]]
    singles = DOCUMENTS[:3]
    with EmbedderClient(reranker_servers(name).target) as client:
        classified = client.classify(pairs, attention=True, heads=[1, 3])
        alone = client.classify(singles, attention=True)
    for (first, second), result in zip(pairs, classified, strict=True):
        expected, encoded = reference.maps(first, second)
        check_pair(result.attention, expected[:, [1, 3]], encoded)
    for text, result in zip(singles, alone, strict=True):
        expected, encoded = reference.maps(text, None)
        check_pair(result.attention, expected, encoded)
        assert result.attention is not None
        assert len(result.attention.segments) == 1


def test_pair_maps_are_refused_clearly_and_counted_under_their_task(
    reranker_servers: Callable[[str], ServerThread],
) -> None:
    server = reranker_servers("xlm-roberta-reranker")
    registry = server.running.assembly.metrics.registry
    calls = "attnserve_requests_total"
    before = [
        (sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if sample.name == calls
    ]
    long_document = DOCUMENTS[-1]  # truncated to 128 tokens: 2 x 4 x 128^2 elements a pair
    cases: list[tuple[dict[str, Any], str]] = [
        ({"layers": [2]}, "layer 2 is out of range: the model has 2 layers (0..1)"),
        ({"heads": [1, 1]}, "heads must not repeat: [1, 1]"),
        ({"documents": [long_document] * 100}, "over the limit of 8000000 per response"),
    ]
    with EmbedderClient(server.target) as client:
        for case, message in cases:
            arguments = {"documents": DOCUMENTS, **case}
            with pytest.raises(grpc.RpcError) as refused:
                client.rerank(QUERY, arguments.pop("documents"), attention=True, **arguments)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (refused.value.details() or ""), refused.value.details()
        client.rerank(QUERY, DOCUMENTS[:2], attention=True, average_heads=True)
        with pytest.raises(grpc.RpcError):
            client.rerank(QUERY, DOCUMENTS, model="nope")  # refused before any task: ""
    answer = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS[:2]})
    assert answer.status_code == 200

    def count(task: str, **labels: str) -> float:
        """Rerank calls counted under `task` (and `labels`) by this test."""
        wanted = {"method": "Rerank", "task": task, **labels}
        earlier = sum(value for got, value in before if wanted.items() <= got.items())
        return metric(registry, calls, **wanted) - earlier

    assert wait_until(lambda: count("rerank") == 4 and count("") == 1)
    assert count("rerank", code="INVALID_ARGUMENT") == 3
    assert count("rerank", model="xlm-roberta-reranker") == 4  # the default model, named
    assert count("", code="NOT_FOUND") == 1
    assert wait_until(
        lambda: metric(registry, calls, protocol="http", method="rerank", task="rerank") == 1
    )
    assert metric(registry, "attnserve_request_duration_seconds_count", task="rerank") >= 5
    tasks = {
        sample.labels.get("task")
        for family in registry.collect()
        for sample in family.samples
        if "task" in sample.labels
    }
    assert tasks <= {"", "embed", "rerank", "classify"}


def page_data(html_file: Path) -> dict[str, Any]:
    """The inline JSON an attention view draws from."""
    page = html_file.read_text(encoding="utf-8")
    found = re.search(
        r'<script id="attention-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1).replace("<\\/", "</"))
    return data


def test_attend_draws_a_pairs_query_to_document_block(
    reranker_servers: Callable[[str], ServerThread], tmp_path: Path
) -> None:
    """`attnserve attend --query Q --document D`: the HTML view's maps are the served pair's
    (its cross block equal to the served block, within the view's 8-bit storage) and the block it
    outlines is the query's rows x the document's columns; the PNG's every map outlines the same
    block."""
    from matplotlib.patches import Rectangle

    from attnserve.service.client.attention import fetch_pair_attention
    from attnserve.service.client.heatmap import attention_figure, import_pyplot
    from attnserve.service.client.html_view import LEVELS, decode_maps
    from tests.support.cli import png_size, run_cli

    server = reranker_servers("xlm-roberta-reranker")
    document = DOCUMENTS[1]
    png, html_file = tmp_path / "pair.png", tmp_path / "pair.html"
    done = run_cli(
        "attend", "--target", server.target, "--query", QUERY, "--document", document,
        "--out", str(png), "--html", str(html_file), "--layers", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png_size(png)[0] > 0
    with EmbedderClient(server.target) as client:
        (served,) = client.rerank(QUERY, [document], attention=True, layers=[1])
        pair = fetch_pair_attention(client, QUERY, document, layers=[1], average=True)
    assert served.attention is not None
    (q0, q1), (d0, d1) = served.attention.segments
    data = page_data(html_file)
    assert data["block"] == {"rows": [q0, q1], "cols": [d0, d1]}
    assert data["tokens"] == served.attention.tokens
    assert data["layers"] == [1]
    maps = decode_maps(data["maps"], tuple(data["shape"]))
    drawn = maps[:, :, q0:q1, d0:d1]
    np.testing.assert_allclose(drawn, served.attention.cross_block, atol=0.5 / LEVELS + 1e-6)
    assert QUERY in data["title"]
    assert document in data["title"]
    # The PNG's maps (the mean over the heads) each carry the block's outline.
    np.testing.assert_allclose(
        pair.maps, served.attention.maps.mean(axis=1, keepdims=True), atol=1e-6
    )
    assert pair.block == ((q0, q1), (d0, d1))
    figure = attention_figure(pair)
    try:
        outlines = [
            (patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height())
            for axis in figure.axes
            for patch in axis.patches
            if isinstance(patch, Rectangle) and patch.get_label() == "query x document"
        ]
    finally:
        import_pyplot().close(figure)
    assert outlines == [(d0 - 0.5, q0 - 0.5, d1 - d0, q1 - q0)]  # one map: layer 1's mean
    refused = run_cli("attend", "--target", server.target, "--query", QUERY, "--out", str(png))
    assert refused.returncode == 2
    assert "a pair takes --query and --document" in refused.stderr
