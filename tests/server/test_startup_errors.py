"""Start-up failures through the real command: one plain line naming the flag and its value,
no traceback, and an exit code per cause (docs/api.md's exit-code table)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from attnserve.service.server.startup_errors import ExitCode
from tests.support.cli import run_cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on, over both families (as the default host binds)."""
    holder = socket.socket(socket.AF_INET6)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    holder.bind(("::", 0))
    holder.listen()
    yield int(holder.getsockname()[1])
    holder.close()


def serve(artifact: Path, *flags: str) -> tuple[int, str]:
    result = run_cli(
        "serve", "--artifact", str(artifact), "--port", "0", "--metrics-port", "-1",
        "--warmup", "false", "--log-level", "warning", *flags, timeout=180,
    )  # fmt: skip
    return result.returncode, result.stderr


def assert_one_plain_line(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Failed to bind" not in stderr, stderr  # gRPC's C-core line
    (line,) = [line for line in stderr.splitlines() if line.startswith("attnserve serve:")]
    for word in words:
        assert word in line, line


@pytest.mark.parametrize(
    ("flag", "code"),
    [
        ("--port", ExitCode.GRPC_PORT),
        ("--http-port", ExitCode.HTTP_PORT),
        ("--metrics-port", ExitCode.METRICS_PORT),
    ],
)
def test_a_busy_port_names_its_flag(
    artifact_dir: Path, busy_port: int, flag: str, code: ExitCode
) -> None:
    returncode, stderr = serve(artifact_dir, flag, str(busy_port))
    assert returncode == code, stderr
    assert_one_plain_line(stderr, f"{flag} {busy_port}", "in use")


def test_a_busy_port_under_workers_names_its_flag(artifact_dir: Path, busy_port: int) -> None:
    returncode, stderr = serve(artifact_dir, "--workers", "2", "--port", str(busy_port))
    assert returncode == ExitCode.GRPC_PORT, stderr
    assert_one_plain_line(stderr, f"--port {busy_port}")


def test_an_unreadable_artifact(tmp_path: Path) -> None:
    returncode, stderr = serve(tmp_path)  # a directory with no manifest
    assert returncode == ExitCode.ARTIFACT, stderr
    assert_one_plain_line(stderr, f"--artifact {tmp_path}")


def test_a_tls_file_that_is_not_pem(artifact_dir: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    returncode, stderr = serve(artifact_dir, "--tls-cert", str(cert), "--tls-key", str(key))
    assert returncode == ExitCode.TLS, stderr
    assert_one_plain_line(stderr, f"--tls-cert {cert}")


def test_a_provider_that_is_not_there(artifact_dir: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    returncode, stderr = serve(artifact_dir, "--provider", "cuda")
    assert returncode == ExitCode.PROVIDER, stderr
    assert_one_plain_line(stderr, "--provider cuda")


def test_invalid_settings_keep_their_code(artifact_dir: Path) -> None:
    returncode, stderr = serve(artifact_dir, "--max-wait-ms", "-1")
    assert returncode == ExitCode.SETTINGS, stderr
    assert_one_plain_line(stderr, "max_wait_ms")
