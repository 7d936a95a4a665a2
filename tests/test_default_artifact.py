"""`attnserve serve` with no artifact builds the packaged model once, then reuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnserve.service.artifact import verify
from attnserve.service.server.default_artifact import DEFAULT_ARTIFACT_NAME, ensure_default_artifact

pytestmark = pytest.mark.slow


def test_builds_once_into_the_cache_then_reuses_it(tmp_path: Path) -> None:
    built = ensure_default_artifact(tmp_path)
    assert built == tmp_path / DEFAULT_ARTIFACT_NAME
    manifest = verify(built)
    assert manifest.model.name == "sentence-transformers/all-MiniLM-L6-v2"
    stamp = (built / "manifest.json").stat().st_mtime_ns
    assert ensure_default_artifact(tmp_path) == built
    assert (built / "manifest.json").stat().st_mtime_ns == stamp  # verified, not rebuilt
