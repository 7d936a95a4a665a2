"""Where the server's listeners bind: one meaning of `--host` for gRPC, OpenAI HTTP and /metrics.

The default host (`[::]`, or `::`) means every address of both families: one IPv6 socket with
IPV6_V6ONLY off, which Linux also answers on IPv4 (as gRPC's own `[::]` listener does). asyncio
and Python's socket servers would each pick differently (asyncio sets IPV6_V6ONLY on `::`, and
the Prometheus server binds 0.0.0.0), so a client at 127.0.0.1 could reach one port and not the
next. Any other host binds each address it resolves to (`localhost`: 127.0.0.1 and ::1), on one
port. Binding here also turns a busy port into a `PortInUseError` naming the flag, not a traceback.
"""

from __future__ import annotations

import socket
import threading

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from attnserve.service.server.settings import Settings
from attnserve.service.server.startup_errors import PortInUseError

WILDCARDS = ("", "::")


def bare(host: str) -> str:
    """The host without IPv6 brackets (`[::1]` -> `::1`)."""
    return host.strip().removeprefix("[").removesuffix("]")


def grpc_address(host: str, port: int) -> str:
    """`host:port` as gRPC spells it (an IPv6 literal in brackets)."""
    address = bare(host)
    return f"[{address}]:{port}" if ":" in address or not address else f"{address}:{port}"


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """The (family, address) pairs `host` stands for."""
    address = bare(host)
    if address in WILDCARDS:
        return [(socket.AF_INET6, "::")]
    if address == "localhost":  # both loopbacks, as gRPC binds it whatever /etc/hosts says
        loopbacks = [(socket.AF_INET, "127.0.0.1")]
        return loopbacks + ([(socket.AF_INET6, "::1")] if has_ipv6_loopback() else [])
    found: list[tuple[socket.AddressFamily, str]] = []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr[0]) not in found:
            found.append((family, str(sockaddr[0])))
    return found


def bind_sockets(
    host: str, port: int, flag: str, *, reuse_port: bool = False
) -> list[socket.socket]:
    """Bound (not yet listening) sockets for `host`, all on one port (port 0 picks it once);
    `flag` names the setting in the error when the port is taken."""
    bound: list[socket.socket] = []
    try:
        for family, address in addresses(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # the workers of `--workers N` share each port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # Dual-stack only for the wildcard; `localhost` binds ::1 beside 127.0.0.1.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(address != "::"))
            sock.bind((address, port))
            port = port or int(sock.getsockname()[1])
    except OSError as error:
        for sock in bound:
            sock.close()
        raise PortInUseError(flag, port, host, error) from None
    return bound


def check_free(host: str, port: int, flag: str, *, reuse_port: bool = False) -> None:
    """Fail early, in plain words, when a listener could not bind (gRPC's own failure is a
    C-core log line and a traceback). Port 0 is always free."""
    if port != 0:
        for sock in bind_sockets(host, port, flag, reuse_port=reuse_port):
            sock.close()


class MetricsListener:
    """Prometheus' /metrics (its own WSGI app and quiet handler) on the sockets `host` stands
    for, one serving thread per socket (prometheus_client's own server binds one address)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        app = make_wsgi_app(registry)
        self.servers: list[ThreadingWSGIServer] = []
        for sock in bind_sockets(host, port, "--metrics-port"):
            server = ThreadingWSGIServer(
                sock.getsockname()[:2], _SilentHandler, bind_and_activate=False
            )
            server.socket.close()
            server.socket = sock
            server.server_name, server.server_port = "attnserve", int(sock.getsockname()[1])
            server.setup_environ()
            server.server_activate()
            server.set_app(app)
            threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
            self.servers.append(server)
        self.port = self.servers[0].server_port

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []


def check_ports(settings: Settings, reuse_port: bool) -> None:
    """Every listener's port, before any of them starts: a busy one stops the server before it
    serves anything, naming its flag."""
    check_free(settings.host, settings.port, "--port", reuse_port=reuse_port)
    if settings.http_port > 0:
        check_free(settings.host, settings.http_port, "--http-port", reuse_port=reuse_port)
    if settings.metrics_port > 0:
        check_free(settings.host, settings.metrics_port, "--metrics-port")
