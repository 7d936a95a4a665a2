"""int8 for CPU: static activation scales, per-channel weights, behind a gate enforced in code.

Weights are quantised per output channel (one scale per row, not per tensor: per-tensor scales
gave mean cosine 0.95 here). Activation scales are fixed at export from a calibration corpus
(`export.calibration`), never computed from the batch, so a text's vector does not depend on its
neighbours. Before that the fp32 graph is smoothed (`export.smoothing`: activation outliers moved
into the weights, exactly), and each matrix product's own int8 error is measured; candidates run
from fastest (all int8) to most accurate (the most sensitive products in fp32: chosen per model
by measurement, not by name), and the first that meets the goal of `export.int8_gate` on
held-out texts is written (else the most accurate that passes the gate). If none passes, no
int8 graph is written and the export says why.

The entry point, `build_int8`, takes a graph path, the tokenizer and the graph's input names:
any family's fast graph, encoder or decoder. Nodes are chosen by their weights' shapes, never by
name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from attnserve.export.calibration import (
    UINT8_LEVELS,
    Range,
    activation_ranges,
    dynamic_inputs,
    fix_activation_scales,
    fuse_scaled_matmuls,
    real_token_values,
)
from attnserve.export.int8_gate import (
    GATE_TEXTS,
    Int8Quality,
    measure,
)
from attnserve.export.onnx_files import data_file, remove_graph
from attnserve.export.progress import stage
from attnserve.export.smoothing import ALPHA, products_by_input, smooth
from attnserve.export.vector_check import Feeder, PooledRunner, feeder
from attnserve.service.artifact import Int8Spec
from attnserve.service.corpus import calibration_corpus, held_out_corpus

if TYPE_CHECKING:  # torch only for the type: `quantize` itself runs on the serving install
    from attnserve.model.tokenization import ReferenceTokenizer

CALIBRATION_TEXTS = 512
METHOD = (
    f"smoothed (SmoothQuant, a={ALPHA}), static activation scales (uint8, per tensor, "
    "calibrated), per-channel int8 weights"
)


@dataclass(frozen=True)
class Int8Result:
    """The candidate written (None: none passed) and the last measured quality."""

    name: str | None
    quality: Int8Quality
    fp32_nodes: tuple[str, ...]
    calibration_texts: int

    def parity(self) -> dict[str, float]:
        """The manifest's parity figures, as every graph has them."""
        return {
            "mean_cosine_to_fp32": self.quality.mean_cosine,
            "min_cosine_to_fp32": self.quality.min_cosine,
            "n_texts": float(self.quality.n_texts),
        }

    def spec(self) -> Int8Spec:
        """The manifest's int8 record: how it was made, what it costs for retrieval."""
        return Int8Spec(
            method=METHOD if self.name is None else f"{METHOD}; {self.name}",
            fp32_nodes=self.fp32_nodes,
            calibration_texts=self.calibration_texts,
            held_out_texts=self.quality.n_texts,
            nn_agreement=self.quality.nn_agreement,
            top10_overlap=self.quality.top10_overlap,
            batch_invariance=self.quality.invariance,
        )


def ffn_down_projections(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose weight maps the wide feed-forward layer back to the hidden size.

    Their inputs are post-GELU (or SwiGLU) activations with long tails: the least int8-friendly.
    """
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(weights.get(node.input[1], ())) == 2
        and weights[node.input[1]][0] > weights[node.input[1]][1]
    ]


def product_errors(fp32_path: Path, feed: Feeder, texts: Sequence[str]) -> dict[str, float]:
    """Each product's own int8 error, measured alone: relative Frobenius error of X @ W when X
    takes its static uint8 scale (its range on `texts`) and W per-column int8, on the real
    tokens of `texts` run through the fp32 graph. Largest first: the order to keep them fp32."""
    model = onnx.load(str(fp32_path))
    weights = {init.name: init for init in model.graph.initializer}
    groups = products_by_input(model)
    errors: dict[str, float] = {}
    captured: dict[str, list[np.ndarray]] = {}
    for name, values in real_token_values(fp32_path, list(groups), feed, texts):
        captured.setdefault(name, []).append(values.reshape(-1, values.shape[-1]))
    for tensor, products in groups.items():
        x = np.concatenate(captured[tensor])
        scale, zero_point = Range(float(x.min()), float(x.max())).scale_and_zero_point()
        x_q = (np.clip(np.round(x / scale) + zero_point, 0, UINT8_LEVELS) - zero_point) * scale
        for node in products:
            w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
            w_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0  # per output column
            w_q = np.clip(np.round(w / w_scale), -127, 127) * w_scale
            exact = x @ w
            errors[node.name] = float(np.linalg.norm(x_q @ w_q - exact) / np.linalg.norm(exact))
    return dict(sorted(errors.items(), key=lambda item: -item[1]))


def candidates(fp32_path: Path) -> list[tuple[str, list[str]]]:
    """(name, nodes kept in fp32), fastest first."""
    down = ffn_down_projections(onnx.load(str(fp32_path), load_external_data=False))
    return [
        ("static, per-channel", []),
        ("static, per-channel, first FFN down-projection fp32", down[:1]),
        ("static, per-channel, FFN down-projections fp32", down),
    ]


def quantizable_ops(model: onnx.ModelProto) -> list[str]:
    """MatMuls, and ONNX Runtime's contrib Attention (its packed QKV weight) where the graph has
    one: the quantizer's Attention rule knows only that op, not the standard opset-23 one."""
    nodes = model.graph.node
    contrib = any(n.op_type == "Attention" and n.domain == "com.microsoft" for n in nodes)
    return ["MatMul", "Attention"] if contrib else ["MatMul"]


def quantize_dynamic_graph(fp32_path: Path, out_path: Path, keep_fp32: Sequence[str]) -> None:
    """ONNX Runtime's dynamic int8 (per-tensor activation scales from each batch): the starting
    point of `quantize`, and the benchmarks' baseline."""
    remove_graph(out_path)  # the quantizer appends to an existing data file
    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=quantizable_ops(onnx.load(str(fp32_path), load_external_data=False)),
        nodes_to_exclude=list(keep_fp32),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        # A graph too big for one file yields an int8 graph kept the same way (named alike).
        use_external_data_format=data_file(fp32_path).exists(),
    )


def quantize(
    fp32_path: Path,
    out_path: Path,
    keep_fp32: Sequence[str],
    feed: Feeder,
    calibration: Sequence[str],
    known: dict[str, Range] | None = None,
) -> int:
    """The int8 graph at `out_path` with static activation scales; returns how many scales.

    `known` ranges (by tensor name) are reused and the ones measured here added to it: the
    candidates quantise subsets of one graph's tensors, so one calibration pass serves all."""
    known = {} if known is None else known
    quantize_dynamic_graph(fp32_path, out_path, keep_fp32)
    model = onnx.load(str(out_path), load_external_data=False)  # weights stay in their file
    missing = [name for name in dynamic_inputs(model) if name not in known]
    if missing:
        known.update(activation_ranges(fp32_path, missing, feed, calibration))
    fixed = fix_activation_scales(model, known)
    fuse_scaled_matmuls(model)
    onnx.save(model, str(out_path))
    onnx.checker.check_model(str(out_path))
    return fixed


SENSITIVE_KEPT = (0, 2, 4, 8, 16)  # how many of the most sensitive products stay fp32, in turn
SENSITIVITY_TEXTS = 128  # calibration texts each product's own error is measured on


def build_int8(
    fp32_path: Path,
    out_path: Path,
    tokenizer: ReferenceTokenizer,
    inputs: Sequence[str],
    damage: Callable[[Path], None] | None = None,
    reference: np.ndarray | None = None,
) -> Int8Result:
    """Smooth, then keep fp32 the fewest most sensitive products that reach the goal.

    Candidates, fastest first: the smoothed graph all int8, then with its 2, 4, 8, 16 most
    sensitive products (each one's own error, `product_errors`) in fp32, then with every FFN
    down-projection in fp32 (`smoothed_candidates`). The first that meets
    the goal (`Int8Quality.meets_goal`) is written; if none does, the most accurate one that
    passes the gate, and the export says the goal was not reached (`Int8Result.name` None: none
    passed). `damage` lets a test hurt each candidate before it is measured, to prove the gate
    bites; `reference` is the fp32 graph's pooled vectors on the gate's held-out texts where the
    caller has them (the export's finite check computes exactly these), else computed here.
    """
    feed = feeder(tokenizer, inputs)
    calibration, held_out = calibration_corpus(CALIBRATION_TEXTS), held_out_corpus(GATE_TEXTS)
    with stage("int8", "fp32 reference vectors") as step:
        computed = reference is None
        if reference is None:
            reference = PooledRunner(fp32_path, feed).embed(held_out)
        assert reference.shape[0] == len(held_out), "a reference for other texts"
        step.outcome = (
            f"{len(held_out)} held-out texts for the gate ("
            + ("run here" if computed else "from the finite check")
            + f"); {len(calibration)} others calibrate"
        )
    smoothed = out_path.with_name(out_path.stem + ".smoothed.onnx")
    try:
        with stage("int8", "smoothing and each product's sensitivity") as step:
            folded = smooth(fp32_path, smoothed, feed, calibration, elementwise=False)
            errors = product_errors(
                smoothed, feed, calibration[:: max(1, len(calibration) // SENSITIVITY_TEXTS)]
            )
            ranked = list(errors)
            step.outcome = (
                f"{folded} activations smoothed (a={ALPHA}, folded into LayerNorms and "
                f"attentions); most sensitive: "
                + ", ".join(f"{name} {error:.3f}" for name, error in list(errors.items())[:4])
            )
        return best_candidate(
            smoothed, out_path, ranked, feed, calibration, held_out, reference, damage
        )
    finally:
        remove_graph(smoothed)


def best_candidate(
    smoothed: Path,
    out_path: Path,
    ranked: Sequence[str],
    feed: Feeder,
    calibration: Sequence[str],
    held_out: Sequence[str],
    reference: np.ndarray,
    damage: Callable[[Path], None] | None,
) -> Int8Result:
    quality = Int8Quality(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    tried = smoothed_candidates(smoothed, ranked)
    best: tuple[float, int] | None = None  # (mean cosine, index in `tried`) of the best passed
    ranges: dict[str, Range] = {}
    for index, (name, keep) in enumerate(tried):
        with stage("int8", name) as step:
            quantize(smoothed, out_path, keep, feed, calibration, ranges)
            if damage is not None:
                damage(out_path)
            quality = measure(reference, PooledRunner(out_path, feed), held_out)
            step.outcome = f"{quality.said()}: " + (
                "meets the goal"
                if quality.meets_goal
                else "passes the gate, not the goal"
                if quality.passed
                else "fails the gate"
            )
        if quality.meets_goal:
            said = f"{name}: the fastest that meets the goal"
            return Int8Result(said, quality, tuple(keep), len(calibration))
        if quality.passed and (best is None or quality.mean_cosine > best[0]):
            best = (quality.mean_cosine, index)
    if best is None:
        remove_graph(out_path)
        return Int8Result(None, quality, (), len(calibration))
    name, keep = tried[best[1]]
    with stage("int8", f"{name} (the goal not reached: the most accurate)"):
        quantize(smoothed, out_path, keep, feed, calibration, ranges)
        quality = measure(reference, PooledRunner(out_path, feed), held_out)
    said = f"{name}: the goal not reached; the most accurate that passes the gate"
    return Int8Result(said, quality, tuple(keep), len(calibration))


def smoothed_candidates(smoothed: Path, ranked: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(name, products kept fp32), fastest first: the most sensitive by measurement, then every
    FFN down-projection (found by shape): on the real MPNet the ranking by each product's own
    error missed what the down-projections together cost (16 ranked fp32: mean cosine 0.885;
    the 12 down-projections: 0.998 on 300 texts)."""
    tried = [(candidate_name(k), list(ranked[:k])) for k in SENSITIVE_KEPT if k <= len(ranked)]
    down = ffn_down_projections(onnx.load(str(smoothed), load_external_data=False))
    if down and not any(set(down) <= set(keep) for _, keep in tried):
        tried.append(("smoothed, FFN down-projections fp32", down))
    return tried


def candidate_name(kept: int) -> str:
    return "smoothed, all int8" if kept == 0 else f"smoothed, {kept} most sensitive fp32"
