"""Why the server could not start, in one plain line naming the flag and its value, and an exit
code per cause, so scripts and supervisors can tell a busy port from a broken artifact (the
docs/api.md's exit-code table lists them).

Every cause is a `StartupError` (`errors.py`), which `attnserve serve` prints as one line and
turns into its `exit_code`.
"""

from __future__ import annotations

import ssl
from enum import IntEnum
from pathlib import Path

from attnserve.service.server.errors import StartupError


class ExitCode(IntEnum):
    """`attnserve serve`'s exit codes (0: served, then stopped cleanly)."""

    STOPPED_UNCLEANLY = 1  # a worker did not drain in time or exited with an error
    SETTINGS = 2  # a flag or environment value is invalid (pydantic's check)
    ARTIFACT = 3  # the artifact is missing, unreadable or fails its manifest
    TLS = 4  # a TLS file is unreadable or not PEM of the right kind
    PROVIDER = 5  # the execution provider or precision asked for is not available
    GRPC_PORT = 6  # --port is in use
    HTTP_PORT = 7  # --http-port is in use
    METRICS_PORT = 8  # --metrics-port is in use
    TRACING = 9  # --otlp-endpoint set without the tracing extra


PORT_CODES = {
    "--port": ExitCode.GRPC_PORT,
    "--http-port": ExitCode.HTTP_PORT,
    "--metrics-port": ExitCode.METRICS_PORT,
}


class ArtifactUnreadableError(StartupError):
    exit_code = ExitCode.ARTIFACT


class TlsFileError(StartupError):
    exit_code = ExitCode.TLS


class PortInUseError(StartupError):
    def __init__(self, flag: str, port: int, host: str, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"{flag} {port}: cannot listen on {host} ({reason.lower()})")
        self.exit_code = PORT_CODES[flag]


def check_tls_files(cert: Path | None, key: Path | None, client_ca: Path | None) -> None:
    """Read the TLS files as the listeners will, before any of them starts: gRPC would only
    fail on the first handshake."""
    if cert is None or key is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise TlsFileError(
            f"--tls-cert {cert} / --tls-key {key}: not a readable PEM certificate chain and its "
            f"private key ({error})"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(client_ca)
        except (OSError, ssl.SSLError) as error:
            raise TlsFileError(
                f"--tls-client-ca {client_ca}: not a readable PEM CA bundle ({error})"
            ) from None
