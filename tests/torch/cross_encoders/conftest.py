"""Cross-encoder checkpoints (tests/support/cross_encoders.py) and their artifacts, each built
once per session, and a server per artifact per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.artifacts import ArtifactCache
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES, build_cross_encoder
from tests.support.servers import ServerThread, server_settings


@pytest.fixture(scope="session")
def cross_encoders(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """name (CROSS_ENCODER_SHAPES) -> its CrossEncoder folder, built once."""
    root = tmp_path_factory.mktemp("cross-encoders")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_cross_encoder(root / name, CROSS_ENCODER_SHAPES[name])
        return built[name]

    return get


@pytest.fixture(scope="session")
def cross_encoder_artifacts(
    cross_encoders: Callable[[str], Path], artifacts: ArtifactCache
) -> Callable[[str], Path]:
    """name -> its artifact (fp32 graphs; int8 and fp16 for the BERT reranker), exported once."""

    def get(name: str) -> Path:
        reduced = name == "bert-reranker"
        return artifacts.get(cross_encoders(name), int8=reduced, fp16=reduced)

    return get


@pytest.fixture(scope="module")
def reranker_servers(
    cross_encoder_artifacts: Callable[[str], Path],
) -> Iterator[Callable[[str], ServerThread]]:
    """name -> a server of that artifact (HTTP on), started once per module."""
    started: dict[str, ServerThread] = {}

    def get(name: str) -> ServerThread:
        if name not in started:
            artifact = cross_encoder_artifacts(name)
            started[name] = ServerThread(server_settings(artifact, http_port=0))
        return started[name]

    yield get
    for running in started.values():
        running.stop()
