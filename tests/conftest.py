"""Shared fixtures: the artifact built once per session, real servers on loopback, references.

Nothing at module level needs torch: fixtures that do import it when used, so `pytest
tests/unit` (and every serving test given a prebuilt artifact) runs on the serving install.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from attnserve.service.client.client import EmbedderClient
from tests.encoder_families import ENCODER_SHAPES, SERVED_SHAPES
from tests.helpers import (
    DECODER_SHAPES,
    FULL_EXPORT_SHAPE,
    ServerThread,
    build_bpe_tokenizer,
    server_settings,
)

if TYPE_CHECKING:
    from attnserve.model import Encoder
    from tests.reference import Reference

# Test modules that compare against the PyTorch model or export with it: skipped as a whole on
# the serving install (no torch), where everything else still runs.
TORCH_TESTS = [
    "test_cli_embed_local.py",
    "test_encoder_families_export.py",
    "test_encoder_families_model.py",
    "test_encoder_families_service.py",
    "test_decoder_checkpoint.py",
    "test_decoder_export.py",
    "test_decoder_model.py",
    "test_decoder_service.py",
    "test_export_artifact.py",
    "test_model_attention.py",
    "test_model_checkpoint.py",
    "test_model_reference_parity.py",
    "test_service_attention.py",
    "test_service_embed.py",
]
collect_ignore = TORCH_TESTS if importlib.util.find_spec("torch") is None else []

# Reference libraries must never reach for a hub: everything loads from the packaged folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tiny_encoder() -> Encoder:
    torch = pytest.importorskip("torch")
    from attnserve.model import Encoder
    from tests.reference import TINY_CONFIG

    torch.manual_seed(0)
    encoder = Encoder(TINY_CONFIG)
    encoder.eval()
    return encoder


@pytest.fixture(scope="session")
def reference() -> Reference:
    """The packaged all-MiniLM-L6-v2 in our PyTorch encoder, loaded once per test session."""
    pytest.importorskip("torch")
    from tests.reference import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def checkpoint_dir(reference: Reference) -> Path:
    return reference.checkpoint.directory


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model exported once per test session and shared by every test.

    `ATTNSERVE_TEST_ARTIFACT` names a prebuilt artifact instead (a machine that cannot export,
    such as a GPU host without torch).
    """
    prebuilt = os.environ.get("ATTNSERVE_TEST_ARTIFACT")
    if prebuilt:
        return Path(prebuilt)
    pytest.importorskip("torch")
    from attnserve.export.artifact import build_artifact

    out = tmp_path_factory.mktemp("artifact") / "all-MiniLM-L6-v2"
    build_artifact(out)
    return out


@pytest.fixture(scope="session")
def server(artifact_dir: Path) -> Iterator[ServerThread]:
    """One real gRPC server on loopback for the whole session (default settings)."""
    running = ServerThread(server_settings(artifact_dir))
    yield running
    running.stop()


@pytest.fixture
def make_server(artifact_dir: Path) -> Iterator[Callable[..., ServerThread]]:
    """Start servers with settings overrides (warm-up off by default); stops what it started."""
    started: list[ServerThread] = []

    def make(span_exporter: Any = None, **overrides: Any) -> ServerThread:
        overrides.setdefault("warmup", False)
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


@pytest.fixture(scope="session", params=sorted(DECODER_SHAPES))
def decoder_checkpoint(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    decoder_tokenizer_file: Path,
) -> Path:
    """Each test decoder shape (tests/helpers.py), built with transformers and saved."""
    pytest.importorskip("torch")
    from tests.reference import build_decoder_checkpoint

    name: str = request.param
    directory = tmp_path_factory.mktemp("decoders") / name
    return build_decoder_checkpoint(directory, DECODER_SHAPES[name], decoder_tokenizer_file)


@pytest.fixture(scope="session")
def decoder_artifact(decoder_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnserve.export.artifact import build_artifact

    full = decoder_checkpoint.name == FULL_EXPORT_SHAPE
    out = tmp_path_factory.mktemp("decoder-artifacts") / decoder_checkpoint.name
    build_artifact(out, decoder_checkpoint, int8=full, fp16=full)
    return out


@pytest.fixture(scope="module")
def decoder_server(decoder_artifact: Path) -> Iterator[ServerThread]:
    """Stopped when its test module ends: no idle servers under the rest of the suite."""
    running = ServerThread(server_settings(decoder_artifact))
    yield running
    running.stop()


# --- BERT-like families: tiny random RoBERTa/XLM-R/CamemBERT/DistilBERT checkpoints -----------


@pytest.fixture(scope="session")
def encoder_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """name (tests/encoder_families.py ENCODER_SHAPES) -> its checkpoint folder, built once."""
    pytest.importorskip("torch")
    from tests.encoder_families import ENCODER_SHAPES, build_encoder_checkpoint, build_tokenizer

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
def family_artifact(
    served_family_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The family's served checkpoint exported once per session (int8 for RoBERTa only: time)."""
    from attnserve.export.artifact import build_artifact

    name = served_family_checkpoint.name
    out = tmp_path_factory.mktemp("family-artifacts") / name
    build_artifact(out, served_family_checkpoint, int8=name == "roberta", fp16=False)
    return out


@pytest.fixture(scope="module")
def family_server(family_artifact: Path) -> Iterator[ServerThread]:
    running = ServerThread(server_settings(family_artifact, http_port=0))
    yield running
    running.stop()
