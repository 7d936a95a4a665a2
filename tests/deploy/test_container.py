"""The CPU image, built and run: what an operator sees from outside the container.

deploy/docker/Dockerfile.cpu is built with podman by deploy/docker/build.sh, on a Python base
made from Debian's packages (deploy/docker/base.sh, kept in podman's store between runs: no
container registry is reachable here), with the session's artifact as the `artifact` build
context, so the build needs no torch. One container then runs as user 10001 on a read-only root
filesystem, configured only through ATTNSERVE_* variables, and the host checks it: gRPC health
SERVING, an `Embed` equal to the host server's answer, /metrics, the image's HEALTHCHECK, and
SIGTERM draining to exit 0. The tests share the one container and run in file order; the last
one stops it.

Skips where no container engine can run; under CI (CI=true, where .ci/run installs podman) the
same condition fails instead. The build time, image size and start-up time are printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from attnserve.service.client.client import EmbedderClient
from tests.support import ROOT
from tests.support.cli import report, unavailable
from tests.support.servers import ServerThread
from tests.support.texts import VARIED_TEXTS

pytestmark = pytest.mark.container

BASE_IMAGE = "localhost/attnserve-python:3.11-bookworm"
IMAGE = "localhost/attnserve:test-cpu"
SERVICE = "attnserve.v1.Embedder"
DRAIN_DELAY_S = 2.0
START_TIMEOUT_S = 120.0
# float32 through the same graph and ONNX Runtime build; a difference means a different model.
MAX_ABS_DIFFERENCE = 1e-5


class Podman:
    """The podman command with the settings this machine kind needs (deploy/podman/)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.env = dict(os.environ)
        # As deploy/podman/env.sh does for the scripts: crun fails on these kernels' hybrid
        # cgroups, so with runc installed use the project's containers.conf unless one is set.
        if "CONTAINERS_CONF" not in self.env and shutil.which("runc"):
            self.env["CONTAINERS_CONF"] = str(ROOT / "deploy/podman/containers.conf")

    def run(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.executable, *args],
            capture_output=True, text=True, timeout=timeout, env=self.env, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result


@dataclass
class Built:
    image: str
    size_bytes: int
    build_s: float


@dataclass
class Running:
    name: str
    port: int
    metrics_port: int
    start_to_serving_s: float

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now, distinct (held together while the kernel picks them)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def health_status(target: str, timeout: float = 2.0) -> int | None:
    """The server's health for the API, or None while it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


@pytest.fixture(scope="module")
def podman() -> Podman:
    executable = shutil.which("podman")
    if executable is None:
        unavailable("no container engine: podman is not installed")
    engine = Podman(executable)
    info = engine.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        unavailable(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    return engine


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> str:
    """Debian 12's Python, made once with debootstrap and kept in podman's store."""
    if podman.run("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        unavailable(f"no {BASE_IMAGE} in podman's store, and making it needs root and debootstrap")
    result = subprocess.run(
        [str(ROOT / "deploy/docker/base.sh"), BASE_IMAGE],
        capture_output=True, text=True, timeout=600, env=podman.env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return BASE_IMAGE


@pytest.fixture(scope="module")
def built(podman: Podman, base_image: str, artifact_dir: Path) -> Built:
    """deploy/docker/build.sh: the Dockerfile on the Debian-made base, the artifact as its
    `artifact` build context, PyPI over the host's network."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "deploy/docker/build.sh"), "cpu", str(artifact_dir), IMAGE],
        capture_output=True, text=True, timeout=1200, check=False,
        env={**podman.env, "BASE_IMAGE": base_image},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    build_s = time.monotonic() - started
    size = podman.run("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout
    return Built(IMAGE, int(size), build_s)


@pytest.fixture(scope="module")
def container(podman: Podman, built: Built) -> Iterator[Running]:
    name = f"attnserve-test-{os.getpid()}"
    port, metrics_port = free_ports(2)
    started = time.monotonic()
    podman.run(
        "run", "--detach", "--name", name,
        "--read-only", "--user", "10001", "--network", "host",
        # Loopback only: the host's network is shared, nothing else should reach the server.
        "-e", "ATTNSERVE_HOST=127.0.0.1",
        "-e", f"ATTNSERVE_PORT={port}", "-e", f"ATTNSERVE_METRICS_PORT={metrics_port}",
        "-e", f"ATTNSERVE_DRAIN_DELAY_S={DRAIN_DELAY_S}",
        built.image,
    )  # fmt: skip
    try:
        running = Running(name, port, metrics_port, wait_for_serving(podman, name, port, started))
        yield running
    finally:
        podman.run("rm", "--force", "--time", "0", name, check=False)


def wait_for_serving(podman: Podman, name: str, port: int, started: float) -> float:
    """Seconds from `podman run` to health SERVING, asked from the host."""
    while time.monotonic() - started < START_TIMEOUT_S:
        if health_status(f"127.0.0.1:{port}") == health_pb2.HealthCheckResponse.SERVING:
            return time.monotonic() - started
        state = podman.run("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if state != "true":
            logs = podman.run("logs", name, check=False)
            raise AssertionError(f"the container exited before SERVING:\n{logs.stderr[-4000:]}")
        time.sleep(0.25)
    raise AssertionError(f"not SERVING within {START_TIMEOUT_S} s")


def test_image_builds_and_serves(
    built: Built, container: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert health_status(container.target) == health_pb2.HealthCheckResponse.SERVING
    report(
        capsys,
        f"[container] image {built.size_bytes / 1e6:.0f} MB, built in {built.build_s:.0f} s, "
        f"container start to SERVING {container.start_to_serving_s:.1f} s",
    )


def test_runs_as_user_10001_on_a_read_only_root(podman: Podman, container: Running) -> None:
    probe = podman.run("exec", container.name, "sh", "-c", "id -u; touch /probe", check=False)
    assert probe.stdout.split() == ["10001"]
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stderr
    config = podman.run(
        "inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", container.name
    ).stdout.split()
    assert config == ["10001", "true"]


def test_embeddings_equal_the_host_servers(
    container: Running, server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmbedderClient(container.target) as inside, EmbedderClient(server.target) as host:
        assert inside.info().artifact_sha256 == host.info().artifact_sha256
        theirs = inside.embed(VARIED_TEXTS, token_embeddings=True)
        ours = host.embed(VARIED_TEXTS, token_embeddings=True)
    assert theirs.pooled is not None
    assert ours.pooled is not None
    assert theirs.pooled.shape == ours.pooled.shape == (len(VARIED_TEXTS), 384)
    assert theirs.token_counts == ours.token_counts
    pooled = float(np.abs(theirs.pooled - ours.pooled).max())
    tokens = max(
        float(np.abs(a - b).max())
        for a, b in zip(theirs.token_embeddings, ours.token_embeddings, strict=True)
        if a is not None and b is not None
    )
    assert pooled <= MAX_ABS_DIFFERENCE
    assert tokens <= MAX_ABS_DIFFERENCE
    report(
        capsys,
        f"[container] container vs host over {len(VARIED_TEXTS)} texts: max abs difference "
        f"pooled {pooled:.2e}, per token {tokens:.2e}",
    )


def test_metrics_are_scraped_from_the_host(container: Running) -> None:
    with EmbedderClient(container.target) as client:
        client.embed(["counted"])
    url = f"http://127.0.0.1:{container.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("attnserve_model_ready", ())] == 1
    ok = (("code", "OK"), ("method", "Embed"), ("protocol", "attnserve.v1"))
    assert samples[("attnserve_requests_total", ok)] >= 1
    (info,) = [dict(labels) for name, labels in samples if name == "attnserve_model_info"]
    assert info["provider"] == "CPUExecutionProvider"


def test_the_images_healthcheck_follows_the_server(podman: Podman, container: Running) -> None:
    check = podman.run("healthcheck", "run", container.name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigterm_drains_then_exits_zero(podman: Podman, container: Running) -> None:
    """The last test: it stops the module's container."""
    podman.run("kill", "--signal", "TERM", container.name)
    time.sleep(DRAIN_DELAY_S / 4)  # inside the drain delay
    assert health_status(container.target) == health_pb2.HealthCheckResponse.NOT_SERVING
    check = podman.run("healthcheck", "run", container.name, check=False)
    assert check.returncode != 0
    assert "unhealthy" in check.stdout
    exit_code = podman.run("wait", container.name, timeout=60).stdout.strip()
    assert exit_code == "0"
    logs = podman.run("logs", container.name)
    lines = (logs.stdout + logs.stderr).splitlines()
    assert any("draining: NOT_SERVING" in line for line in lines)
    assert any(line.endswith(" stopped") for line in lines)
