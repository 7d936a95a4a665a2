"""Every listener answers on every address of the default host: gRPC, OpenAI HTTP and /metrics
over 127.0.0.1 and ::1 alike, and `--host` means the same for all three."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from attnserve.service.client.client import EmbedderClient
from attnserve.service.server.listeners import addresses, grpc_address
from tests.support.servers import MakeServer, ServerThread


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def reachable(running: ServerThread, host: str) -> dict[str, bool]:
    """Which of the three listeners answer at `host` (a literal address)."""
    bracketed = f"[{host}]" if ":" in host else host
    seen = {}
    with EmbedderClient(f"{bracketed}:{running.running.port}", attempts=1) as client:
        seen["grpc"] = client.info().model_name != ""
    status, body = get(f"http://{bracketed}:{running.running.http_port}/v1/models")
    seen["http"] = status == 200 and bool(json.loads(body)["data"])
    status, body = get(f"http://{bracketed}:{running.running.metrics_port}/metrics")
    seen["metrics"] = status == 200 and b"attnserve_requests_total" in body
    return seen


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["[::]", "::", "localhost"])
def test_the_default_host_and_localhost_answer_on_both_families(
    make_server: MakeServer, host: str
) -> None:
    running = make_server(host=host, http_port=0)
    for address in ("127.0.0.1", "::1"):
        assert reachable(running, address) == {"grpc": True, "http": True, "metrics": True}


def test_an_ipv4_host_binds_every_listener_there_only(make_server: MakeServer) -> None:
    running = make_server(host="127.0.0.1", http_port=0)
    assert reachable(running, "127.0.0.1") == {"grpc": True, "http": True, "metrics": True}
    if has_ipv6_loopback():
        for port in (running.running.port, running.running.http_port, running.running.metrics_port):
            with socket.socket(socket.AF_INET6) as probe, pytest.raises(ConnectionRefusedError):
                probe.connect(("::1", port))


def test_host_spellings() -> None:
    assert grpc_address("[::]", 5) == "[::]:5"
    assert grpc_address("::", 5) == "[::]:5"
    assert grpc_address("::1", 5) == "[::1]:5"
    assert grpc_address("127.0.0.1", 5) == "127.0.0.1:5"
    assert addresses("[::]", 0) == [(socket.AF_INET6, "::")]
    assert (socket.AF_INET, "127.0.0.1") in addresses("localhost", 0)
