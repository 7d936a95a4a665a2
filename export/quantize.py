"""int8 for CPU: static activation scales, per-channel weights, behind a gate enforced in code.

Weights are quantised per output channel (one scale per row, not per tensor: per-tensor scales
gave mean cosine 0.95 here). Activation scales are fixed at export from a calibration corpus
(`export.calibration`), never computed from the batch, so a text's vector does not depend on its
neighbours. Candidates run from fastest to most accurate (fp32 feed-forward down-projections as
a fallback); the first that passes `export.int8_gate` on held-out texts is written. If none
passes, no int8 graph is written and the export says why.

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
from onnxruntime.quantization import QuantType, quantize_dynamic

from attnserve.export.calibration import (
    Range,
    activation_ranges,
    dynamic_inputs,
    fix_activation_scales,
    fuse_scaled_matmuls,
)
from attnserve.export.int8_gate import (
    GATE_TEXTS,
    MIN_INVARIANCE,
    MIN_MEAN_COSINE,
    MIN_MIN_COSINE,
    Int8Quality,
    measure,
)
from attnserve.export.onnx_files import data_file, remove_graph
from attnserve.export.progress import stage
from attnserve.export.vector_check import Feeder, PooledRunner, feeder
from attnserve.service.artifact import Int8Spec
from attnserve.service.corpus import calibration_corpus, held_out_corpus

if TYPE_CHECKING:  # torch only for the type: `quantize` itself runs on the serving install
    from attnserve.model.tokenization import ReferenceTokenizer

CALIBRATION_TEXTS = 512
METHOD = "static activation scales (uint8, per tensor, calibrated), per-channel int8 weights"


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
            method=METHOD,
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


def build_int8(
    fp32_path: Path,
    out_path: Path,
    tokenizer: ReferenceTokenizer,
    inputs: Sequence[str],
    damage: Callable[[Path], None] | None = None,
    reference: np.ndarray | None = None,
) -> Int8Result:
    """Write the first candidate that passes the gate (`Int8Result.name` None: none did).

    `damage` lets a test hurt each candidate before it is measured, to prove the gate bites;
    `reference` is the fp32 graph's pooled vectors on the gate's held-out texts where the
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
    quality = Int8Quality(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    keep: list[str] = []
    ranges: dict[str, Range] = {}
    for name, keep in candidates(fp32_path):
        with stage("int8", name) as step:
            quantize(fp32_path, out_path, keep, feed, calibration, ranges)
            if damage is not None:
                damage(out_path)
            quality = measure(reference, PooledRunner(out_path, feed), held_out)
            step.outcome = (
                f"gate (mean >= {MIN_MEAN_COSINE}, min >= {MIN_MIN_COSINE}, alone vs in batches "
                f">= {MIN_INVARIANCE}): {quality.said()}: " + ("PASS" if quality.passed else "fail")
            )
        if quality.passed:
            return Int8Result(name, quality, tuple(keep), len(calibration))
    remove_graph(out_path)
    return Int8Result(None, quality, tuple(keep), len(calibration))
