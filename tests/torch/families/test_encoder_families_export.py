"""Exporting the BERT-like families: the fast graph's attention fused into
com.microsoft.Attention (RoBERTa's positions and DistilBERT's missing token types sit outside
it), both graphs exact against our model, and `attnserve export` naming the families it knows
when it refuses a checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import read_manifest
from attnserve.service.sessions import open_session
from tests.support.cli import run_cli
from tests.support.encoder_families import ENCODER_SHAPES
from tests.support.texts import VARIED_TEXTS


def test_both_graphs_are_exact_and_the_fast_one_is_fused(
    served_family_checkpoint: Path, family_artifact: Path
) -> None:
    shape = ENCODER_SHAPES[served_family_checkpoint.name]
    manifest = read_manifest(family_artifact)
    fast, maps = manifest.graph("fast", "fp32"), manifest.graph("maps", "fp32")
    assert fast is not None
    assert maps is not None
    assert fast.op_counts.get("com.microsoft.Attention") == shape.num_layers
    assert "Softmax" not in fast.op_counts  # nothing materialises the probabilities
    assert maps.parity["max_abs_attentions"] <= 1e-5
    for graph in (fast, maps):
        assert graph.parity["max_abs_token_embeddings"] <= 1e-4
        assert graph.parity["min_cosine_pooled"] >= 0.99999
    # Independently of the figures export recorded: the graph against the model, texts padded.
    model, checkpoint = load_checkpoint(served_family_checkpoint)
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    batch = tokenizer(VARIED_TEXTS)
    feeds = {name: batch[name].numpy() for name in fast.inputs}
    tokens, pooled, attentions = open_session(family_artifact / maps.file).run(None, feeds)
    with torch.no_grad():
        expected = model(**batch, output_attentions=True, normalize=False)
    real = batch["attention_mask"].numpy().astype(bool)
    assert np.abs(tokens - expected.last_hidden_state.numpy())[real].max() <= 1e-4
    rows = np.broadcast_to(real[None, :, None, :, None], attentions.shape)
    assert np.abs(attentions - torch.stack(expected.attentions).numpy())[rows].max() <= 1e-5
    fast_pooled = open_session(family_artifact / fast.file).run(["pooled"], feeds)[0]
    np.testing.assert_allclose(fast_pooled, expected.pooled.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(pooled, expected.pooled.numpy(), atol=1e-4, rtol=0)


def test_export_refuses_an_unknown_family_naming_those_it_knows(
    encoder_checkpoints: object, tmp_path: Path
) -> None:
    assert callable(encoder_checkpoints)
    checkpoint = tmp_path / "electra"
    shutil.copytree(encoder_checkpoints("distilbert"), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "model_type": "electra"}))
    result = run_cli("export", "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint))
    assert result.returncode == 2
    said = result.stderr.strip()
    assert "model_type 'electra' is unsupported" in said
    assert "bert, roberta, xlm-roberta, camembert, distilbert" in said
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_checkpoint_whose_outputs_hold_nan(
    encoder_checkpoints: object, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    assert callable(encoder_checkpoints)
    checkpoint = tmp_path / "roberta-overflow"
    shutil.copytree(encoder_checkpoints("roberta"), checkpoint)
    tensors = load_file(str(checkpoint / "model.safetensors"))
    name = "encoder.layer.1.output.dense.weight"
    tensors[name] = torch.full_like(tensors[name], 1e38)  # overflows to Inf, then NaN
    save_file(tensors, str(checkpoint / "model.safetensors"))
    out = tmp_path / "out"
    result = run_cli("export", "--out", str(out), "--checkpoint", str(checkpoint), "--no-int8")
    assert result.returncode == 1
    said = result.stderr.strip().splitlines()[-1]
    assert "NonFiniteOutputError: encoder.fast.fp32.onnx: output" in said
    assert "holds NaN or Inf" in said
    assert not out.exists()


def test_the_finite_check_names_the_text_that_overflows(
    family_artifact: Path, tmp_path: Path
) -> None:
    """The check runs every output over many texts: one text's NaN is found and named."""
    import pytest

    from attnserve.export.finite import NonFiniteOutputError, check_finite
    from attnserve.export.vector_check import pooled_embeddings
    from tests.support.encoder_families import poison_token

    clean, tainted = "hello", "Привет, как дела?"
    tokenizer = ReferenceTokenizer(family_artifact / "tokenizer.json", 64)
    clean_ids = set(tokenizer([clean])["input_ids"][0].tolist())
    token_id = next(i for i in tokenizer([tainted])["input_ids"][0].tolist() if i not in clean_ids)
    poisoned = poison_token(family_artifact, tmp_path / "poisoned", token_id)
    texts = [clean, "the second text is longer than the first", "a third", *[clean] * 37]
    for graph in ("encoder.fast.fp32.onnx", "encoder.maps.fp32.onnx"):
        # Its pooled vectors, in the texts' order, are the int8 gate's fp32 reference.
        vectors = check_finite(poisoned / graph, tokenizer, texts)
        assert vectors is not None
        expected = pooled_embeddings(poisoned / graph, tokenizer, texts)
        np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
        with pytest.raises(NonFiniteOutputError, match=r"holds NaN or Inf for text 37 "):
            check_finite(poisoned / graph, tokenizer, [clean] * 37 + [tainted, clean])
