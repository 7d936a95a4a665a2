"""One way to connect to an attnserve server: target, TLS/mTLS, bearer token, message caps.

Used by the typed client, the load tester and the benchmarks, and by every client command
through `add_connection_flags`, so all of them take the same flags and open channels alike.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from attnserve.v1 import embedder_pb2

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
DEFAULT_TARGET = "localhost:50051"


@dataclass(frozen=True)
class Connection:
    """Where and how to connect. The token is a secret: `describe()` never shows it."""

    target: str = DEFAULT_TARGET
    token: str | None = None
    ca: Path | None = None  # CA bundle: connect with TLS
    cert: Path | None = None  # client certificate (mTLS)
    key: Path | None = None  # client key (mTLS)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Per-call metadata: the bearer token, when there is one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None and self.cert is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes() if self.ca else None,
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )

    def options(self, attempts: int = 1) -> list[tuple[str, int | str]]:
        """Message caps, and gRPC's own retry policy (on UNAVAILABLE) when attempts > 1."""
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.enable_retries", int(attempts > 1)),
        ]
        if attempts > 1:  # gRPC's retry policy needs at least two attempts
            options.append(("grpc.service_config", retry_config(attempts)))
        return options

    def channel(self, attempts: int = 1) -> grpc.Channel:
        credentials = self.credentials()
        if credentials is None:
            return grpc.insecure_channel(self.target, options=self.options(attempts))
        return grpc.secure_channel(self.target, credentials, options=self.options(attempts))

    def aio_channel(self, attempts: int = 1) -> aio.Channel:
        credentials = self.credentials()
        if credentials is None:
            return aio.insecure_channel(self.target, options=self.options(attempts))
        return aio.secure_channel(self.target, credentials, options=self.options(attempts))

    def describe(self) -> dict[str, object]:
        """For reports: everything but the token's value."""
        return {
            "target": self.target,
            "token": self.token is not None,
            "tls": self.ca is not None or self.cert is not None,
            "mtls": self.cert is not None,
        }


def retry_config(attempts: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": SERVICE_NAME}],
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """The same connection flags on every client command (embed, attend, loadtest)."""
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server HOST:PORT")
    parser.add_argument("--token", default=None, help="bearer token, if the server wants one")
    parser.add_argument("--ca", type=Path, default=None, help="CA bundle: connect with TLS")
    parser.add_argument("--cert", type=Path, default=None, help="client certificate (mTLS)")
    parser.add_argument("--key", type=Path, default=None, help="client key (mTLS)")


def connection_from_args(args: argparse.Namespace) -> Connection:
    return Connection(args.target, args.token, args.ca, args.cert, args.key)
