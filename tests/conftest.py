"""Shared fixtures: the artifact built once per session, real servers on loopback, references.

Nothing at module level needs torch: fixtures that do import it when used, so `pytest
tests/unit` (and every serving test given a prebuilt artifact) runs on the serving install;
the tests that need torch live under `tests/torch/`, whose conftest skips them without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support.artifacts import ArtifactCache
from tests.support.decoders import DECODER_SHAPES, FULL_EXPORT_SHAPE, build_bpe_tokenizer
from tests.support.encoder_families import ENCODER_SHAPES, SERVED_SHAPES
from tests.support.servers import ServerThread, server_settings

if TYPE_CHECKING:
    from attnserve.model import Encoder
    from tests.support.reference import Reference

# Reference libraries must never reach for a hub: everything loads from the packaged folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tiny_encoder() -> Encoder:
    torch = pytest.importorskip("torch")
    from attnserve.model import Encoder
    from tests.support.reference import TINY_CONFIG

    torch.manual_seed(0)
    encoder = Encoder(TINY_CONFIG)
    encoder.eval()
    return encoder


@pytest.fixture(scope="session")
def reference() -> Reference:
    """The packaged all-MiniLM-L6-v2 in our PyTorch encoder, loaded once per test session."""
    pytest.importorskip("torch")
    from tests.support.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def checkpoint_dir(reference: Reference) -> Path:
    return reference.checkpoint.directory


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    """Every artifact of the test run, each exported once (tests/support/artifacts.py).

    `ATTNSERVE_TEST_ARTIFACT` names a prebuilt packaged artifact instead (a machine that cannot
    export, such as a GPU host without torch).
    """
    prebuilt = os.environ.get("ATTNSERVE_TEST_ARTIFACT")
    return ArtifactCache(tmp_path_factory.mktemp("artifacts"), Path(prebuilt) if prebuilt else None)


@pytest.fixture(scope="session")
def artifact_dir(artifacts: ArtifactCache) -> Path:
    """The packaged model, exported once per test session and shared by every test."""
    if os.environ.get("ATTNSERVE_TEST_ARTIFACT") is None:
        pytest.importorskip("torch")
    return artifacts.packaged()


@pytest.fixture(scope="session")
def server(artifact_dir: Path) -> Iterator[ServerThread]:
    """One real gRPC server on loopback for the whole session (the test settings)."""
    running = ServerThread(server_settings(artifact_dir))
    yield running
    running.stop()


@pytest.fixture
def make_server(artifact_dir: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start servers with settings overrides; stops what it started."""
    started: list[ServerThread] = []

    def make(span_exporter: Any = None, **overrides: Any) -> ServerThread:
        running = ServerThread(server_settings(artifact_dir, **overrides), span_exporter)
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(server.target) as connected:
        yield connected


# --- decoders: tiny random Qwen3/Qwen2 checkpoints, each exported and served once per session ---


@pytest.fixture(scope="session")
def decoder_tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bpe_tokenizer(tmp_path_factory.mktemp("bpe") / "tokenizer.json")


@pytest.fixture(scope="session")
def decoder_checkpoints(
    tmp_path_factory: pytest.TempPathFactory, decoder_tokenizer_file: Path
) -> Callable[[str], Path]:
    """name (DECODER_SHAPES in tests/support/decoders.py) -> its checkpoint, built once (pytest
    sets a parametrized session fixture up again when the order of tests switches params)."""
    pytest.importorskip("torch")
    from tests.support.reference import build_decoder_checkpoint

    root = tmp_path_factory.mktemp("decoders")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_decoder_checkpoint(
                root / name, DECODER_SHAPES[name], decoder_tokenizer_file
            )
        return built[name]

    return get


@pytest.fixture(scope="session", params=sorted(DECODER_SHAPES))
def decoder_checkpoint(
    request: pytest.FixtureRequest, decoder_checkpoints: Callable[[str], Path]
) -> Path:
    """Each test decoder shape (tests/support/decoders.py), built with transformers and saved."""
    return decoder_checkpoints(request.param)


@pytest.fixture(scope="session")
def decoder_artifact(decoder_checkpoint: Path, artifacts: ArtifactCache) -> Path:
    full = decoder_checkpoint.name == FULL_EXPORT_SHAPE
    return artifacts.get(decoder_checkpoint, int8=full, fp16=full)


@pytest.fixture(scope="module")
def decoder_server(decoder_artifact: Path) -> Iterator[ServerThread]:
    """Stopped when its test module ends: no idle servers under the rest of the suite."""
    running = ServerThread(server_settings(decoder_artifact))
    yield running
    running.stop()


# --- BERT-like families: tiny random RoBERTa/XLM-R/CamemBERT/DistilBERT checkpoints -----------


@pytest.fixture(scope="session")
def encoder_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """name (ENCODER_SHAPES in tests/support/encoder_families.py) -> its checkpoint, built once."""
    pytest.importorskip("torch")
    from tests.support.encoder_families import (
        ENCODER_SHAPES,
        build_encoder_checkpoint,
        build_tokenizer,
    )

    root = tmp_path_factory.mktemp("encoder-families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            shape = ENCODER_SHAPES[name]
            tokenizer = root / f"{shape.tokenizer}.json"
            if not tokenizer.exists():
                build_tokenizer(shape.tokenizer, tokenizer)
            built[name] = build_encoder_checkpoint(root / name, shape, tokenizer)
        return built[name]

    return get


@pytest.fixture(scope="session", params=sorted(ENCODER_SHAPES))
def encoder_family_checkpoint(
    request: pytest.FixtureRequest, encoder_checkpoints: Callable[[str], Path]
) -> Path:
    return encoder_checkpoints(request.param)


@pytest.fixture(scope="session", params=SERVED_SHAPES)
def served_family_checkpoint(
    request: pytest.FixtureRequest, encoder_checkpoints: Callable[[str], Path]
) -> Path:
    return encoder_checkpoints(request.param)


@pytest.fixture(scope="session")
def family_artifact(served_family_checkpoint: Path, artifacts: ArtifactCache) -> Path:
    """The family's served checkpoint exported once per session (int8 for RoBERTa only: time)."""
    name = served_family_checkpoint.name
    return artifacts.get(served_family_checkpoint, int8=name == "roberta", fp16=False)


@pytest.fixture(scope="module")
def family_server(family_artifact: Path) -> Iterator[ServerThread]:
    running = ServerThread(server_settings(family_artifact, http_port=0))
    yield running
    running.stop()
