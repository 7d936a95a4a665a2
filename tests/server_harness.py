"""A real attnserve gRPC server on loopback, in a background thread with its own event loop.

Tests talk to it over real sockets with real clients; they may also read its internals
(batcher, metrics) to see what happened inside.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from attnserve.service.server.app import RunningServer, build_server
from attnserve.service.server.settings import Settings

T = TypeVar("T")


class ServerThread:
    def __init__(self, settings: Settings, span_exporter: Any = None) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="server")
        self.thread.start()
        self.running: RunningServer = self.call(build_server(settings, span_exporter))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.running.drain_and_stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
