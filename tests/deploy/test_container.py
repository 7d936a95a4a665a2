"""The CPU image, built and run: what an operator sees from outside the container.

deploy/docker/Dockerfile.cpu is built with podman by deploy/docker/build.sh, on a Python base
made from Debian's packages (deploy/docker/base.sh, kept in podman's store between runs: no
container registry is reachable here), with the session's artifact as the `artifact` build
context, so the build needs no torch. One container then runs as user 10001 on a read-only root
filesystem, configured only through ATTNSERVE_* variables, and the host checks it: gRPC health
SERVING, an `Embed` equal to the host server's answer, /metrics, the image's HEALTHCHECK, and
SIGTERM draining to exit 0. The tests share the one container and run in file order; the last
one stops it. The image is built once per session (tests/deploy/conftest.py).

Skips where no container engine can run; under CI (CI=true, where .ci/run installs podman) the
same condition fails instead. The build time, image size and start-up time are printed.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from attnserve.service.client.client import EmbedderClient
from tests.support.cli import report
from tests.support.deploy import Built, Podman, free_ports, health_status
from tests.support.servers import ServerThread
from tests.support.texts import VARIED_TEXTS

pytestmark = [pytest.mark.container, pytest.mark.slow]

DRAIN_DELAY_S = 2.0
START_TIMEOUT_S = 120.0
# float32 through the same graph and ONNX Runtime build; a difference means a different model.
MAX_ABS_DIFFERENCE = 1e-5


@dataclass
class Running:
    name: str
    port: int
    metrics_port: int
    start_to_serving_s: float

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


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

    def total(name: str, **labels: str) -> float:
        """A series summed over the labels not given (the per-model `model` label among them)."""
        wanted = set(labels.items())
        return sum(v for (n, given), v in samples.items() if n == name and wanted <= set(given))

    assert total("attnserve_model_ready") == 1  # the image serves one model, warm
    ok = {"code": "OK", "method": "Embed", "protocol": "attnserve.v1"}
    assert total("attnserve_requests_total", **ok) >= 1
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
