"""The CPU image, built once per session for the tests that run it (test_container.py runs it
with `podman run`, test_kube_play.py with `podman kube play`): podman's build cache makes a
second build cheap, but not free, and both must test the same image."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.cli import unavailable
from tests.support.deploy import BASE_IMAGE, IMAGE, Built, Podman


@pytest.fixture(scope="session")
def podman() -> Podman:
    executable = shutil.which("podman")
    if executable is None:
        unavailable("no container engine: podman is not installed")
    engine = Podman(executable)
    info = engine.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        unavailable(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    return engine


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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
