"""The load tests' stand-in server (tests/support/stand_in_servers.py), shared by their files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stand_in_servers import KnownLatencyEmbedder, serving


@pytest.fixture
def known_latency_server() -> Iterator[str]:
    with serving(KnownLatencyEmbedder()) as target:
        yield target
