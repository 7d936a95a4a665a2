"""One real server for every client library's test: the packaged all-MiniLM-L6-v2 (the
default model, "mini") and a tiny random BERT reranker ("rr", tests/support/cross_encoders.py)
beside it, HTTP on, as a retrieval pod serves them. The libraries are the ones users install
(the dev extra pins none of their internals); each test module skips, naming the library, where
one is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerThread, server_settings

EMBEDDER, RERANKER = "mini", "rr"


@pytest.fixture(scope="session")
def reranker_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT reranker, built and exported once (needs torch, as every export does)."""
    pytest.importorskip("torch", reason="the test reranker is exported from a torch checkpoint")
    from attnserve.export.artifact import build_artifact
    from tests.support.cross_encoders import CROSS_ENCODER_SHAPES, build_cross_encoder

    root = tmp_path_factory.mktemp("clients")
    checkpoint = build_cross_encoder(root / "checkpoint", CROSS_ENCODER_SHAPES["bert-reranker"])
    build_artifact(root / RERANKER, checkpoint, int8=False, fp16=False)
    return root / RERANKER


@pytest.fixture(scope="session")
def pod(artifact_dir: Path, reranker_artifact: Path) -> Iterator[ServerThread]:
    entries = [f"{EMBEDDER}={artifact_dir}", f"{RERANKER}={reranker_artifact}"]
    running = ServerThread(server_settings(entries, http_port=0, warmup=False))
    yield running
    running.stop()


def http_base(server: ServerThread) -> str:
    return f"http://127.0.0.1:{server.running.http_port}"


@pytest.fixture(scope="session")
def reranker_pod(artifact_dir: Path, reranker_artifact: Path) -> Iterator[ServerThread]:
    """The same two models with the reranker as the default: TEI's clients name no model (a
    TEI server serves one), so a TEI reranker client reaches the default."""
    entries = [f"{RERANKER}={reranker_artifact}", f"{EMBEDDER}={artifact_dir}"]
    running = ServerThread(server_settings(entries, http_port=0, warmup=False))
    yield running
    running.stop()
