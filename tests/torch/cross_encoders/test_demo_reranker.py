"""The offline rerank quick start: the demo reranker (model/demo_reranker.py) is a checkpoint
sentence-transformers' CrossEncoder reads as its own, and `attnserve export`, `serve` and
`rerank` run on it as written, scores equal to CrossEncoder's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread, server_settings

pytestmark = pytest.mark.slow  # its own export of a MiniLM-sized reranker, as a user runs it


def test_the_demo_reranker_exports_serves_and_ranks_as_crossencoder_does(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    checkpoint = tmp_path / "checkpoints" / "demo-reranker"
    made = subprocess.run(
        [sys.executable, "-m", "attnserve.model.demo_reranker", str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "rank nothing meaningfully" in made.stdout  # it says what it is
    expected = CrossEncoder(str(checkpoint), device="cpu").predict(
        [(QUERY, document) for document in DOCUMENTS]
    )

    artifact = tmp_path / "artifacts" / "demo-reranker"
    exported = run_cli(
        "export", "--checkpoint", str(checkpoint), "--out", str(artifact), "--no-int8",
        "--no-fp16", timeout=600,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "rerank scores" in exported.stdout
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["head"]["labels"] == ["LABEL_0"]

    server = ServerThread(server_settings(artifact))
    try:
        ranked = run_cli("rerank", "--target", server.target, "--json", QUERY, *DOCUMENTS)
    finally:
        server.stop()
    assert ranked.returncode == 0, ranked.stderr
    results = json.loads(ranked.stdout)["results"]
    scores = np.empty(len(DOCUMENTS))
    for result in results:
        scores[result["index"]] = result["score"]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
