"""A real attnserve server on loopback for tests, and waiting on what it does."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from attnserve.service.server.app import RunningServer, build_server
from attnserve.service.server.settings import Settings

T = TypeVar("T")


def server_settings(artifact: Path | list[str], **overrides: Any) -> Settings:
    """Settings for a test server: loopback, free ports, no drain delay, no warm-up (a test
    about warm-up and the cost model turns it on: `warmup=True`); `artifact` one directory or
    several `--artifact` values (`NAME=PATH`)."""
    values: dict[str, Any] = {
        "artifact": artifact,
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "drain_delay_s": 0.0,
        "shutdown_grace_s": 5.0,
        "max_wait_ms": 2.0,
        "warmup": False,
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


# The `make_server` fixture: start a server with settings overrides; the fixture stops it.
MakeServer = Callable[..., ServerThread]


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


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A series' value summed over the labels not given (as PromQL's `sum` does): the
    per-model `model` label and any other a test does not care about."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total
