"""`attnserve serve` with no artifact builds the packaged model once, then reuses it, quietly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from attnserve.service.artifact import verify
from attnserve.service.server.default_artifact import DEFAULT_ARTIFACT_NAME, ensure_default_artifact

pytestmark = pytest.mark.slow

# What torch's exporter, onnxscript and ONNX Runtime's quantiser say when left to themselves.
LIBRARY_NOISE = ("torchvision", "Quantization parameters", "pre-processing", "initializer", "W1")


def test_builds_once_into_the_cache_then_reuses_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="attnserve.service.server.default_artifact")
    built = ensure_default_artifact(tmp_path)
    assert built == tmp_path / DEFAULT_ARTIFACT_NAME
    manifest = verify(built)
    assert manifest.model.name == "sentence-transformers/all-MiniLM-L6-v2"

    # The first start's export shows in the server's log: its stages and its summary, no noise.
    said = [r.getMessage() for r in caplog.records]
    # The first start says what it does, in words that read as news, not as an error.
    assert said[0].startswith("first start: building the packaged all-MiniLM-L6-v2 into ")
    assert not [line for line in said if "not found" in line or "attnserve artifact?" in line]
    assert any(line.startswith("export: int8") and "meets the goal" in line for line in said)
    assert any(line.startswith("export: encoder.fast.fp32.onnx") for line in said)
    assert not [line for line in said if any(noise in line for noise in LIBRARY_NOISE)]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    printed = capfd.readouterr()
    assert printed.out == ""  # the child's console went into the log
    assert printed.err == ""

    stamp = (built / "manifest.json").stat().st_mtime_ns
    assert ensure_default_artifact(tmp_path) == built
    assert (built / "manifest.json").stat().st_mtime_ns == stamp  # verified, not rebuilt
