"""`attnserve embed` and `attnserve attend` against a real server, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.helpers import ServerThread, png_size, run_cli

pytestmark = pytest.mark.slow


def test_embed_command_prints_the_served_vectors(
    server: ServerThread, client: EmbedderClient
) -> None:
    result = run_cli("embed", "--target", server.target, "first text", "second text")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == ["first text", "second text"]
    served = client.embed(["first text", "second text"]).pooled
    assert served is not None
    np.testing.assert_allclose([r["embedding"] for r in records], served, atol=1e-6)
    assert "inference" in result.stderr  # the server's stage timings


def test_attend_command_writes_a_heatmap(server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    result = run_cli(
        "attend", "--target", server.target, "the river bank", "--layers", "0", "5", "--out",
        str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    width, height = png_size(out)
    assert height > width  # two layers stacked, one averaged map each
    per_head = tmp_path / "heads.png"
    result = run_cli(
        "attend", "--target", server.target, "bank", "--layers", "1", "--heads", "0", "1", "2",
        "--per-head", "--out", str(per_head),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    width, height = png_size(per_head)
    assert width > 2 * height  # three heads side by side


def test_embed_command_reports_a_status_clearly(server: ServerThread) -> None:
    result = run_cli("embed", "--target", server.target, "")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT: text 0 is empty" in result.stderr
