"""`attnserve embed-local`: the in-process reference command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli
from tests.reference import Reference

pytestmark = pytest.mark.slow

TEXTS = ["The encoder reads every token at once.", "Attention maps show where it looked."]


def attnserve(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, console=True)


def test_embed_local_saves_the_reference_embeddings(reference: Reference, tmp_path: Path) -> None:
    out = tmp_path / "emb.npy"
    result = attnserve("embed-local", "--out", str(out), *TEXTS)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    with torch.no_grad():
        expected = reference.encoder(**reference.tokenizer(TEXTS)).pooled.numpy()
    assert saved.shape == (2, 384)
    np.testing.assert_allclose(saved, expected, atol=1e-6, rtol=0)


def test_embed_local_prints_one_json_line_per_text() -> None:
    result = attnserve("embed-local", "--no-normalize", *TEXTS)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == TEXTS
    assert all(len(r["embedding"]) == 384 for r in records)
    assert records[0]["tokens"] == 12  # [CLS] the en ##code ##r reads every token at once . [SEP]
    norms = [float(np.linalg.norm(r["embedding"])) for r in records]
    assert all(abs(n - 1.0) > 0.01 for n in norms)  # --no-normalize really skipped it


def test_unknown_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    result = attnserve("embed-local", "--checkpoint", str(tmp_path), "text")
    assert result.returncode != 0
    assert "config.json not found" in result.stderr
