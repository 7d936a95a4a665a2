"""A cross-encoder's artifact: the manifest's head (format 3), the scoring graph with the
family's fused attention, exact parity with PyTorch on pairs, and int8 written only past the
score gate (which a damaged quantisation fails)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from attnserve.export.score_graphs import ScoreGate, measure_gate
from attnserve.service.artifact import HeadSpec, verify
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES


@pytest.mark.parametrize("name", ["bert-reranker", "xlm-roberta-tagger"])
def test_the_manifest_carries_the_head_and_the_graphs_answer_scores(
    name: str, cross_encoder_artifacts: Callable[[str], Path]
) -> None:
    shape = CROSS_ENCODER_SHAPES[name]
    manifest = verify(cross_encoder_artifacts(name))
    assert manifest.format_version == 4  # the head came with version 4
    assert manifest.head is not None
    assert manifest.head.labels == shape.labels
    assert manifest.head.multi_label == shape.multi_label
    assert manifest.row_output == "scores"
    assert (manifest.model.pooling, manifest.model.normalize) == ("cls", False)
    fast, maps = manifest.graph("fast", "fp32"), manifest.graph("maps", "fp32")
    assert fast is not None
    assert maps is not None
    assert fast.outputs == ("scores",)
    assert maps.outputs == ("scores", "attentions")
    assert fast.op_counts.get("com.microsoft.Attention") == 2  # one per layer: fused
    assert fast.parity["max_abs_scores"] <= 1e-5
    assert maps.parity["max_abs_attentions"] <= 1e-5
    expected_inputs = 3 if shape.family == "bert" else 2  # token types for BERT only
    assert len(fast.inputs) == expected_inputs
    if name == "bert-reranker":
        int8 = manifest.graph("fast", "int8")
        assert int8 is not None
        assert int8.parity["mean_spearman_to_fp32"] >= 0.97
        assert int8.parity["n_pairs"] == 1000


def test_the_score_gate_fails_scores_that_reorder_or_drift() -> None:
    head = HeadSpec(labels=("LABEL_0",), activation="sigmoid")
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 1)).astype(np.float32)
    assert measure_gate(reference, reference + 1e-4, head).passed
    shuffled = reference.copy()
    rng.shuffle(shuffled)  # a broken graph: the ranking is lost
    gate: ScoreGate = measure_gate(reference, shuffled, head)
    assert not gate.passed
    assert gate.mean_spearman < 0.5
    drifted = measure_gate(reference, reference + 0.5, head)  # same order, scores moved
    assert drifted.mean_spearman == pytest.approx(1.0)
    assert not drifted.passed
