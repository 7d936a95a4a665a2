"""int8 for CPU: dynamic quantisation behind a quality gate enforced in code.

Weights are quantised per output channel (one scale per row, not per tensor: per-tensor scales
gave mean cosine 0.95 here). Candidates run from fastest to most accurate; the first whose pooled
embeddings keep mean cosine >= 0.99 and min >= 0.98 to fp32 over a varied corpus of 1000 texts
is written. If none passes, no int8 graph is written and the manifest says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from attnserve.export.onnx_files import data_file, remove_graph
from attnserve.export.progress import stage
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.corpus import varied_corpus
from attnserve.service.sessions import open_session

MIN_MEAN_COSINE = 0.99
MIN_MIN_COSINE = 0.98
GATE_TEXTS = 1000


@dataclass(frozen=True)
class QualityReport:
    mean_cosine: float
    min_cosine: float
    n_texts: int
    passed: bool


def check_quality(reference: np.ndarray, candidate: np.ndarray) -> QualityReport:
    """The gate: cosine of each text's pooled vector to its fp32 vector, over >= 1000 texts."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosines = (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12)
    cosines = np.nan_to_num(cosines, nan=-1.0)
    mean, low = float(cosines.mean()), float(cosines.min())
    n = int(reference.shape[0])
    passed = n >= GATE_TEXTS and mean >= MIN_MEAN_COSINE and low >= MIN_MIN_COSINE
    return QualityReport(mean, low, n, passed)


def pooled_embeddings(
    path: Path, tokenizer: ReferenceTokenizer, texts: list[str], batch_size: int = 32
) -> np.ndarray:
    session = open_session(path)
    inputs = [graph_input.name for graph_input in session.get_inputs()]  # decoders: no segments
    ordered = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
    rows = []
    for start in range(0, len(ordered), batch_size):
        chunk = [texts[i] for i in ordered[start : start + batch_size]]
        batch = tokenizer(chunk)
        feeds = {name: tensor.numpy() for name, tensor in batch.items()}
        rows.append(session.run(["pooled"], {name: feeds[name] for name in inputs})[0])
    stacked = np.concatenate(rows)
    out = np.empty_like(stacked)
    out[ordered] = stacked
    return out


def ffn_down_projections(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose weight maps the wide feed-forward layer back to the hidden size.

    Their inputs are post-GELU activations with long tails: the least int8-friendly in BERT.
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
    down = ffn_down_projections(onnx.load(str(fp32_path)))
    return [
        ("per-channel", []),
        ("per-channel, first FFN down-projection fp32", down[:1]),
        ("per-channel, FFN down-projections fp32", down),
    ]


def quantizable_ops(model: onnx.ModelProto) -> list[str]:
    """MatMuls, and ONNX Runtime's contrib Attention (its packed QKV weight) where the graph has
    one: the quantizer's Attention rule knows only that op, not the standard opset-23 one."""
    nodes = model.graph.node
    contrib = any(n.op_type == "Attention" and n.domain == "com.microsoft" for n in nodes)
    return ["MatMul", "Attention"] if contrib else ["MatMul"]


def quantize(fp32_path: Path, out_path: Path, keep_fp32: list[str]) -> None:
    remove_graph(out_path)  # the quantizer appends to an existing data file
    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=quantizable_ops(onnx.load(str(fp32_path), load_external_data=False)),
        nodes_to_exclude=keep_fp32,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        # A graph too big for one file yields an int8 graph kept the same way (named alike).
        use_external_data_format=data_file(fp32_path).exists(),
    )


def build_int8(
    fp32_path: Path,
    out_path: Path,
    tokenizer: ReferenceTokenizer,
    damage: Callable[[Path], None] | None = None,
) -> tuple[QualityReport, str | None]:
    """Write the first candidate that passes the gate; returns its report and name (or None).

    `damage` lets a test hurt each candidate before it is measured, to prove the gate bites.
    """
    texts = varied_corpus(GATE_TEXTS)
    with stage("int8", "fp32 reference vectors") as step:
        reference = pooled_embeddings(fp32_path, tokenizer, texts)
        step.outcome = f"{len(texts)} texts for the quality gate"
    report = QualityReport(0.0, 0.0, 0, False)
    for name, keep_fp32 in candidates(fp32_path):
        with stage("int8", name) as step:
            quantize(fp32_path, out_path, keep_fp32)
            if damage is not None:
                damage(out_path)
            report = check_quality(reference, pooled_embeddings(out_path, tokenizer, texts))
            step.outcome = (
                f"gate (mean >= {MIN_MEAN_COSINE}, min >= {MIN_MIN_COSINE}): mean cosine "
                f"{report.mean_cosine:.4f}, min {report.min_cosine:.4f}: "
                + ("PASS" if report.passed else "fail")
            )
        if report.passed:
            return report, name
    remove_graph(out_path)
    return report, None
