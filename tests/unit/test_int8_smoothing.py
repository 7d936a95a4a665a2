"""Smoothing moves activation outliers into the weights without changing the fp32 graph.

A tiny encoder layer built with onnx's helpers, shaped like the exported ones (LayerNorm ->
contrib Attention -> output projection -> residual -> LayerNorm -> up -> GELU -> down ->
residual, then mean pooling), with a few outlier channels as trained LayerNorms have them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attnserve.export.quantize import product_errors, smoothed_candidates
from attnserve.export.smoothing import channel_maxima, products_by_input, smooth
from attnserve.export.vector_check import PooledRunner

HIDDEN, WIDE, HEADS = 16, 64, 2
OUTLIERS = [3, 11]  # channels whose LayerNorm gain is 30x the others'
TEXTS = [f"text {i} " + "w " * (i % 9) for i in range(40)]


def feed(texts: Sequence[str]) -> Mapping[str, np.ndarray]:
    lengths = [1 + len(text.split()) for text in texts]
    x = np.zeros((len(texts), max(lengths), HIDDEN), dtype=np.float32)
    mask = np.zeros((len(texts), max(lengths)), dtype=np.int64)
    for row, (text, length) in enumerate(zip(texts, lengths, strict=True)):
        x[row, :length] = np.random.default_rng(zlib.crc32(text.encode())).normal(
            size=(length, HIDDEN)
        )
        mask[row, :length] = 1
    return {"x": x, "attention_mask": mask}


@pytest.fixture(scope="module")
def layer_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    gain = np.ones(HIDDEN, dtype=np.float32)
    gain[OUTLIERS] = 30.0

    def weight(*shape: int) -> np.ndarray:
        drawn: np.ndarray = rng.normal(size=shape) / np.sqrt(shape[0])
        return drawn.astype(np.float32)

    constants = {
        "gamma": gain,
        "beta": rng.normal(size=HIDDEN).astype(np.float32),
        "gamma2": gain[::-1].copy(),
        "beta2": rng.normal(size=HIDDEN).astype(np.float32),
        "qkv": weight(HIDDEN, 3 * HIDDEN),
        "qkv_bias": rng.normal(size=3 * HIDDEN).astype(np.float32),
        "out": weight(HIDDEN, HIDDEN),
        "up": weight(HIDDEN, WIDE),
        "down": weight(WIDE, HIDDEN),
        "last": np.array([2], dtype=np.int64),
        "tokens": np.array([1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32),
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1),
        helper.make_node(
            "Attention",
            ["ln", "qkv", "qkv_bias", "mask32"],
            ["att"],
            name="attention",
            domain="com.microsoft",
            num_heads=HEADS,
        ),
        helper.make_node("MatMul", ["att", "out"], ["projected"], name="out"),
        helper.make_node("Add", ["ln", "projected"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "gamma2", "beta2"], ["ln2"], axis=-1),
        helper.make_node("MatMul", ["ln2", "up"], ["wide"], name="up"),
        helper.make_node("Gelu", ["wide"], ["gelu"], domain="com.microsoft"),
        helper.make_node("MatMul", ["gelu", "down"], ["narrow"], name="down"),
        helper.make_node("Add", ["ln2", "narrow"], ["y"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "last"], ["m3"]),
        helper.make_node("Mul", ["y", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "tokens"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "tokens"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["pooled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "layer",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", HIDDEN]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", HIDDEN])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    path = tmp_path_factory.mktemp("smoothing") / "layer.fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def spread(maxima: np.ndarray) -> float:
    """How far the loudest channel sits above the typical one: what a per-tensor scale pays."""
    return float(maxima.max() / np.median(maxima))


def test_the_smoothed_graph_equals_the_original(layer_graph: Path, tmp_path: Path) -> None:
    smoothed = tmp_path / "layer.smoothed.onnx"
    assert smooth(layer_graph, smoothed, feed, TEXTS[::2]) == 4  # QKV, out, up, down
    texts = TEXTS[1::2]  # texts the factors were not measured on
    original, after = PooledRunner(layer_graph, feed).embed(texts), PooledRunner(smoothed, feed)
    np.testing.assert_allclose(after.embed(texts), original, rtol=1e-5, atol=1e-5)
    ops = [n.op_type for n in onnx.load(str(smoothed)).graph.node]
    # one LayerNorm copy per product group after a LayerNorm (the residual keeps the original),
    # the attention's V absorbs its factors, GELU's output gets the one elementwise Mul
    assert ops.count("LayerNormalization") == 4
    assert ops.count("Mul") == 2  # the pooling's, and the one before the down-projection


def test_smoothing_flattens_the_outlier_channels_the_products_read(
    layer_graph: Path, tmp_path: Path
) -> None:
    smoothed = tmp_path / "layer.smoothed.onnx"
    smooth(layer_graph, smoothed, feed, TEXTS)
    before = channel_maxima(layer_graph, ["ln"], feed, TEXTS)["ln"]
    model = onnx.load(str(smoothed))
    (qkv_input,) = (
        t for t, nodes in products_by_input(model).items() if nodes[0].op_type == "Attention"
    )
    after = channel_maxima(smoothed, [qkv_input], feed, TEXTS)[qkv_input]
    assert spread(before) > 15  # the outliers the gain made
    assert spread(after) < spread(before) / 3


def test_each_products_error_is_measured_and_smoothing_lowers_the_outliers_share(
    layer_graph: Path, tmp_path: Path
) -> None:
    before = product_errors(layer_graph, feed, TEXTS)
    assert set(before) == {"attention", "out", "up", "down"}
    assert list(before.values()) == sorted(before.values(), reverse=True)  # keep-fp32 order
    smoothed = tmp_path / "layer.smoothed.onnx"
    smooth(layer_graph, smoothed, feed, TEXTS, elementwise=False)
    after = product_errors(smoothed, feed, TEXTS)
    # the products behind the outlier LayerNorms lose less to int8 once smoothed
    assert after["attention"] < before["attention"] / 2
    assert after["up"] < before["up"] / 2
    assert after["down"] == pytest.approx(before["down"], rel=1e-4)  # no Mul: not smoothed


def test_the_candidates_end_with_every_down_projection_fp32_unless_already_tried(
    layer_graph: Path,
) -> None:
    every = smoothed_candidates(layer_graph, ["attention", "up", "out", "down"])
    assert [keep for _, keep in every] == [
        [],
        ["attention", "up"],
        ["attention", "up", "out", "down"],
    ]
    few = smoothed_candidates(layer_graph, ["attention", "up"])
    assert few[-1] == ("smoothed, FFN down-projections fp32", ["down"])
