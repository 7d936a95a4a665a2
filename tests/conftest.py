"""Shared fixtures: the tiny random encoder for fast tests and the real packaged checkpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Reference libraries must never reach for a hub: everything loads from the packaged folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")

from attnserve.model import Encoder, EncoderConfig  # noqa: E402
from attnserve.model.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from attnserve.model.tokenization import ReferenceTokenizer  # noqa: E402
from attnserve.service.client.client import EmbedderClient  # noqa: E402
from attnserve.service.server.settings import Settings  # noqa: E402
from tests.server_harness import ServerThread  # noqa: E402

TINY_CONFIG = EncoderConfig(
    vocab_size=100,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_positions=64,
)

# Short, long, punctuation, digits, non-ASCII, emoji: the texts parity tests run over.
VARIED_TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Wait... what?! No -- really?? (yes; really.)",
    "Prices rose 3.5% in Q3 2024, to $1,234.56 per unit.",
    "Café naïve façade — déjà vu in Zürich.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "emoji 🚀🔥 and symbols ∑∫√ in one line",
    "a",
    " ".join(["Attention is all you need, they said, and the encoder listened."] * 40),
]


@pytest.fixture
def tiny_encoder() -> Encoder:
    torch.manual_seed(0)
    encoder = Encoder(TINY_CONFIG)
    encoder.eval()
    return encoder


@dataclass(frozen=True)
class Reference:
    encoder: Encoder
    checkpoint: Checkpoint
    tokenizer: ReferenceTokenizer


@pytest.fixture(scope="session")
def reference() -> Reference:
    """The packaged all-MiniLM-L6-v2 in our PyTorch encoder, loaded once per test session."""
    encoder, checkpoint = load_checkpoint()
    tokenizer = ReferenceTokenizer(checkpoint.tokenizer_path, checkpoint.max_seq_length)
    return Reference(encoder, checkpoint, tokenizer)


@pytest.fixture(scope="session")
def checkpoint_dir(reference: Reference) -> Path:
    return reference.checkpoint.directory


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model exported once per test session and shared by every test."""
    from attnserve.export.artifact import build_artifact

    out = tmp_path_factory.mktemp("artifact") / "all-MiniLM-L6-v2"
    build_artifact(out)
    return out


def server_settings(artifact: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "artifact": artifact,
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "drain_delay_s": 0.0,
        "shutdown_grace_s": 5.0,
        "max_wait_ms": 2.0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def server(artifact_dir: Path) -> Iterator[ServerThread]:
    """One real gRPC server on loopback for the whole session (default settings)."""
    running = ServerThread(server_settings(artifact_dir))
    yield running
    running.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(server.target) as connected:
        yield connected
