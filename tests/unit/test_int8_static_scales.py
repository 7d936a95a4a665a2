"""Static activation scales make int8 batch-invariant; the gate's arithmetic is right.

A tiny graph built with onnx's helpers (a matrix product, then mean pooling over real tokens) is
quantised by ONNX Runtime's dynamic quantiser exactly as the export does, so the dynamic graph's
batch dependence is real, and so is its cure.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attnserve.export.calibration import (
    Range,
    activation_ranges,
    dynamic_inputs,
    fix_activation_scales,
)
from attnserve.export.int8_gate import (
    GOAL_MEAN_COSINE,
    GOAL_NN_AGREEMENT,
    MIN_INVARIANCE,
    Int8Quality,
    batch_invariance,
    retrieval_agreement,
)
from attnserve.export.quantize import quantize, quantize_dynamic_graph
from attnserve.export.vector_check import PooledRunner

HIDDEN = 16
TEXTS = [f"text {i} " + "w " * (i % 7) for i in range(40)]


def feed(texts: Sequence[str]) -> Mapping[str, np.ndarray]:
    """A made-up embedding per text: length from the text, values from its hash, and a scale
    that differs a lot between texts (so a per-batch range moves with the neighbours)."""
    lengths = [1 + len(text.split()) for text in texts]
    x = np.zeros((len(texts), max(lengths), HIDDEN), dtype=np.float32)
    mask = np.zeros((len(texts), max(lengths)), dtype=np.int64)
    for row, (text, length) in enumerate(zip(texts, lengths, strict=True)):
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        x[row, :length] = rng.normal(size=(length, HIDDEN)) * (1 + 9 * rng.random())
        mask[row, :length] = 1
    return {"x": x, "attention_mask": mask}


@pytest.fixture(scope="module")
def fp32_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pooled = mean over real tokens of (x @ W): (B, T, H) -> (B, H)."""
    weight = np.random.default_rng(0).normal(size=(HIDDEN, HIDDEN)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["y"], name="projection"),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "last"], ["m3"]),
        helper.make_node("Mul", ["y", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "tokens"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "tokens"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["pooled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", HIDDEN]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", HIDDEN])],
        [
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("int8") / "tiny.fp32.onnx"
    onnx.save(model, str(path))
    return path


def test_dynamic_int8_depends_on_the_batch_and_static_scales_do_not(
    fp32_graph: Path, tmp_path: Path
) -> None:
    dynamic, static = tmp_path / "dynamic.onnx", tmp_path / "static.onnx"
    quantize_dynamic_graph(fp32_graph, dynamic, [])
    assert quantize(fp32_graph, static, [], feed, TEXTS[::2]) == 1  # one activation scale
    ops = [node.op_type for node in onnx.load(str(static)).graph.node]
    assert "DynamicQuantizeLinear" not in ops
    assert "QuantizeLinear" in ops
    assert "MatMulIntegerToFloat" in ops  # fused here: ONNX Runtime no longer would
    assert batch_invariance(PooledRunner(dynamic, feed), TEXTS) < 0.9999  # today's int8
    assert batch_invariance(PooledRunner(static, feed), TEXTS) >= MIN_INVARIANCE


def test_the_fused_matmul_gives_exactly_what_the_three_kernels_gave(
    fp32_graph: Path, tmp_path: Path
) -> None:
    fused = tmp_path / "fused.onnx"
    quantize(fp32_graph, fused, [], feed, TEXTS[::2])
    unfused = tmp_path / "unfused.onnx"
    quantize_dynamic_graph(fp32_graph, unfused, [])
    model = onnx.load(str(unfused))
    ranges = activation_ranges(fp32_graph, dynamic_inputs(model), feed, TEXTS[::2])
    fix_activation_scales(model, ranges)  # static scales, left for ONNX Runtime to fuse (or not)
    onnx.save(model, str(unfused))
    assert "MatMulInteger" in [node.op_type for node in model.graph.node]
    np.testing.assert_array_equal(
        PooledRunner(fused, feed).embed(TEXTS), PooledRunner(unfused, feed).embed(TEXTS)
    )


def test_calibration_reads_real_tokens_only(fp32_graph: Path, tmp_path: Path) -> None:
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic_graph(fp32_graph, dynamic, [])
    (name,) = dynamic_inputs(onnx.load(str(dynamic)))
    assert name == "x"
    short, long = "a", "b " * 6

    def padded_with_giants(texts: Sequence[str]) -> Mapping[str, np.ndarray]:
        feeds = dict(feed(texts))
        x = feeds["x"].copy()
        x[feeds["attention_mask"] == 0] = 1e6  # padding that no real token ever reads
        return {**feeds, "x": x}

    found = activation_ranges(fp32_graph, [name], padded_with_giants, [short, long])[name]
    real = feed([short, long])
    values = real["x"][real["attention_mask"].astype(bool)]
    assert found == Range(float(values.min()), float(values.max()))
    assert not (fp32_graph.parent / "tiny.fp32.calibration.onnx").exists()  # cleaned up


def test_range_always_holds_zero_and_fits_uint8() -> None:
    scale, zero_point = Range(0.5, 2.0).scale_and_zero_point()
    assert (scale, zero_point) == pytest.approx((2.0 / 255, 0))
    scale, zero_point = Range(-1.0, 3.0).scale_and_zero_point()
    assert scale == pytest.approx(4.0 / 255)
    assert zero_point == round(255 / 4)


def test_retrieval_agreement_sees_a_changed_neighbour() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    assert retrieval_agreement(vectors, vectors.copy()) == (1.0, 1.0)
    moved = vectors.copy()
    moved[0] = -vectors[0]  # text 0 now points away from everything it was near
    nearest, overlap = retrieval_agreement(vectors, moved)
    assert nearest < 1.0
    assert overlap < 1.0


def test_the_gate_bounds_cosine_and_invariance_not_agreement() -> None:
    good = Int8Quality(0.995, 0.985, 0.7, 0.85, 0.9999999, 1000)
    assert good.passed
    assert not Int8Quality(0.995, 0.985, 0.7, 0.85, 0.9999, 1000).passed  # batch-dependent
    assert not Int8Quality(0.985, 0.985, 0.9, 0.9, 1.0, 1000).passed  # mean cosine
    assert not Int8Quality(0.995, 0.97, 0.9, 0.9, 1.0, 1000).passed  # one text ruined
    assert not Int8Quality(0.995, 0.985, 0.9, 0.9, 1.0, 999).passed  # too few texts


def test_the_goal_is_the_gate_plus_what_retrieval_users_rely_on() -> None:
    def quality(mean: float, nearest: float, invariance: float = 1.0) -> Int8Quality:
        return Int8Quality(mean, 0.99, nearest, 0.96, invariance, 1000)

    assert quality(GOAL_MEAN_COSINE, GOAL_NN_AGREEMENT).meets_goal
    assert not quality(0.997, 0.99).meets_goal  # passes the gate, cosine short of the goal
    assert quality(0.997, 0.99).passed
    assert not quality(0.999, 0.94).meets_goal  # nearest neighbour short of the goal
    assert not quality(0.999, 0.99, invariance=0.999).meets_goal  # the gate still bites
