"""`attnserve embed-local`: the in-process reference command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.cli import run_cli
from tests.support.reference import Reference

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


@pytest.mark.parametrize("decoder_checkpoint", ["qwen3-tied-mqa"], indirect=True)
@pytest.mark.parametrize("prompt_name", [None, "document"])
def test_embed_local_applies_a_decoders_prompts(
    decoder_checkpoint: Path, tmp_path: Path, prompt_name: str | None
) -> None:
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "emb.npy"
    chosen = () if prompt_name is None else ("--prompt-name", prompt_name)
    result = attnserve("embed-local", "--checkpoint", str(decoder_checkpoint), "--out", str(out),
                       *chosen, *TEXTS)  # fmt: skip
    assert result.returncode == 0, result.stderr
    st_model = SentenceTransformer(str(decoder_checkpoint), device="cpu")
    expected = st_model.encode(TEXTS, prompt_name=prompt_name)  # None: the default, "query"
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("decoder_checkpoint", ["qwen3-tied-mqa"], indirect=True)
def test_embed_local_names_an_unknown_prompt(decoder_checkpoint: Path) -> None:
    result = attnserve("embed-local", "--checkpoint", str(decoder_checkpoint), "--prompt-name",
                       "passage", "text")  # fmt: skip
    assert result.returncode == 2
    assert "prompt 'passage' is not in the checkpoint (its prompts: document, query)" in (
        result.stderr
    )
