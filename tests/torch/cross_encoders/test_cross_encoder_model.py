"""The PyTorch cross-encoder (encoder + head, model/cross_encoder.py) against sentence-transformers'
CrossEncoder on random checkpoints of each family: the same logits on the same features, the
labels and activation read from the folder, and loud errors for a checkpoint that does not fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from attnserve.model.checkpoint import CheckpointError
from attnserve.model.cross_encoder import is_sequence_classifier, load_cross_encoder
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES, DOCUMENTS, QUERY


def st_logits(folder: Path, pairs: list[tuple[str, str]]) -> tuple[Any, np.ndarray]:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    raw = model.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
    return model, np.asarray(raw, dtype=np.float32).reshape(len(pairs), -1)


@pytest.mark.parametrize("name", sorted(CROSS_ENCODER_SHAPES))
def test_logits_equal_cross_encoder(name: str, cross_encoders: Callable[[str], Path]) -> None:
    folder = cross_encoders(name)
    shape = CROSS_ENCODER_SHAPES[name]
    assert is_sequence_classifier(folder)
    model, checkpoint, head = load_cross_encoder(folder)
    assert head.labels == shape.labels
    assert head.multi_label == shape.multi_label
    expected_activation = "sigmoid" if shape.multi_label or len(shape.labels) == 1 else "softmax"
    assert head.activation == expected_activation
    assert checkpoint.max_seq_length == shape.max_length
    pairs = [(QUERY, document) for document in DOCUMENTS]
    st, expected = st_logits(folder, pairs)
    features = st.preprocess(pairs)  # CrossEncoder's own pair template and truncation
    with torch.no_grad():
        ours = model(
            features["input_ids"], features["attention_mask"], features.get("token_type_ids")
        ).logits.numpy()
    assert ours.shape == (len(pairs), len(shape.labels))
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    assert np.std(expected[:, 0]) > 1e-2  # the scores spread: a wrong head would show


def test_a_missing_or_misshapen_head_tensor_is_named(
    cross_encoders: Callable[[str], Path], tmp_path: Path
) -> None:
    import shutil

    folder = shutil.copytree(cross_encoders("bert-reranker"), tmp_path / "broken")
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    without = {k: v for k, v in tensors.items() if k != "classifier.weight"}
    save_file(without, str(weights))
    with pytest.raises(CheckpointError, match=r"missing head tensor.*classifier\.weight"):
        load_cross_encoder(folder)
    tensors["classifier.weight"] = torch.zeros(2, tensors["classifier.weight"].shape[1])
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=r"classifier.weight has shape \(2, 64\)"):
        load_cross_encoder(folder)
