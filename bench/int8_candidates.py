"""int8 candidates side by side: served speed, cosine, retrieval agreement, batch invariance.

    python bench/int8_candidates.py --artifact DIR [--duration 4] [--held-out 1000]

Built from the artifact's fast fp32 graph, in one run on one machine:
- dynamic per-tensor: ONNX Runtime's `quantize_dynamic` (per-channel weights), as exports
  wrote before: activation scales from each batch;
- static QDQ: `quantize_static` in QDQ format with a `CalibrationDataReader` over the
  calibration mix, per-tensor weights, then per-channel weights;
- static scales on the integer ops (what the export writes): the dynamic graph with each
  `DynamicQuantizeLinear` replaced by a calibrated `QuantizeLinear` (`export.calibration`);
- the same with the feed-forward down-projections kept in fp32.
Quality: `export.int8_gate` on the held-out mix against fp32. What ONNX Runtime's CPU provider
runs: the op counts of the graph after its own optimisations. Speed: each candidate served by
`attnserve serve` (the fp32 graph first, as the reference), the loads of `bench/serve.py`.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.int8_gate import Int8Quality, measure
from attnserve.export.quantize import (
    CALIBRATION_TEXTS,
    ffn_down_projections,
    quantize,
    quantize_dynamic_graph,
)
from attnserve.export.vector_check import Feeder, PooledRunner, feeder
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import MANIFEST_FILE, Int8Spec, describe_file, verify
from attnserve.service.corpus import calibration_corpus, held_out_corpus, load_texts
from attnserve.service.sessions import session_options
from bench.common import machine_line
from bench.serve import LOADS, served


class Calibration(CalibrationDataReader):  # type: ignore[misc]
    """The calibration mix in batches of 16, as ONNX Runtime's static quantiser reads it."""

    def __init__(self, feed: Feeder, inputs: Sequence[str], texts: Sequence[str]) -> None:
        ordered = sorted(texts, key=len)
        self.batches: Iterator[dict[str, np.ndarray]] = (
            {name: feed(ordered[i : i + 16])[name] for name in inputs}
            for i in range(0, len(ordered), 16)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def static_qdq(
    fp32: Path, out: Path, feed: Feeder, inputs: Sequence[str], per_channel: bool
) -> None:
    quantize_static(
        str(fp32),
        str(out),
        Calibration(feed, inputs, calibration_corpus(CALIBRATION_TEXTS)),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],  # com.microsoft.Attention has no QDQ rule
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def ops_run(path: Path, workdir: Path) -> str:
    """The graph's ops after ONNX Runtime's CPU optimisations: what really runs."""
    import onnxruntime as ort

    optimized = workdir / f"{path.stem}.optimized.onnx"
    options = session_options()
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    counts = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    wanted = ("QAttention", "Attention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
              "QLinearMatMul", "MatMulInteger", "MatMul", "FusedMatMul", "QuantizeLinear",
              "DequantizeLinear", "DynamicQuantizeLinear")  # fmt: skip
    return ", ".join(f"{counts[op]} {op}" for op in wanted if counts[op])


def candidate_artifact(base: Path, graph: Path, quality: Int8Quality, method: str) -> Path:
    """A copy of `base` (links) whose int8 graph is `graph`, with a manifest to match."""
    out = graph.parent / f"artifact-{graph.stem}"
    out.mkdir()
    manifest = verify(base)
    for name in manifest.files:
        (out / name).symlink_to(base / name)
    (out / graph.name).symlink_to(graph)
    spec = manifest.graph("fast", "int8")
    assert spec is not None
    figures = Int8Spec(
        method=method,
        fp32_nodes=(),
        calibration_texts=CALIBRATION_TEXTS,
        held_out_texts=quality.n_texts,
        nn_agreement=quality.nn_agreement,
        top10_overlap=quality.top10_overlap,
        batch_invariance=quality.invariance,
    )
    swapped = spec.model_copy(update={"file": graph.name, "int8": figures})
    files = {k: v for k, v in manifest.files.items() if k != spec.file}
    files[graph.name] = describe_file(graph)
    graphs = tuple(swapped if g is spec else g for g in manifest.graphs)
    rewritten = manifest.model_copy(update={"graphs": graphs, "files": files})
    (out / MANIFEST_FILE).write_text(rewritten.model_dump_json(indent=2))
    verify(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per served load")
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--corpus", default="mixed", help="served texts: a named mix or a file")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-int8-"))
    manifest = verify(args.artifact)
    fp32_spec = manifest.graph("fast", "fp32")
    assert fp32_spec is not None
    fp32 = args.artifact / fp32_spec.file
    inputs = fp32_spec.inputs
    tokenizer = ReferenceTokenizer(args.artifact / manifest.tokenizer.file, 256)
    feed = feeder(tokenizer, inputs)
    calibration, held_out = calibration_corpus(CALIBRATION_TEXTS), held_out_corpus(args.held_out)
    down = ffn_down_projections(onnx.load(str(fp32), load_external_data=False))

    built: dict[str, Path] = {}
    path = workdir / "dynamic.onnx"
    quantize_dynamic_graph(fp32, path, [])
    built["dynamic per-tensor (before)"] = path
    for per_channel in (False, True):
        path = workdir / f"qdq-{'channel' if per_channel else 'tensor'}.onnx"
        static_qdq(fp32, path, feed, inputs, per_channel)
        built[f"static QDQ, per-{'channel' if per_channel else 'tensor'} weights"] = path
    path = workdir / "static.onnx"
    quantize(fp32, path, [], feed, calibration)
    built["static scales, per-channel (chosen)"] = path
    path = workdir / "static-down-fp32.onnx"
    quantize(fp32, path, down, feed, calibration)
    built["static scales, FFN down-projections fp32"] = path

    print(f"machine: {machine_line()}")
    print(f"held-out texts: {len(held_out)}; calibration texts: {len(calibration)}\n")
    reference = PooledRunner(fp32, feed).embed(held_out)
    qualities = {
        name: measure(reference, PooledRunner(p, feed), held_out) for name, p in built.items()
    }
    texts = load_texts(args.corpus)
    rates = {"fp32": served(args.artifact, workdir, texts, args.duration, ["--precision", "fp32"])}
    for name, graph in built.items():
        artifact = candidate_artifact(args.artifact, graph, qualities[name], name)
        extra = ["--precision", "int8"]
        rates[name] = served(artifact, workdir, texts, args.duration, extra)
    fp32_rates = rates["fp32"]
    loads = " | ".join(name for name, _, _ in LOADS)
    quality = "mean cos | min cos | NN agreement | top-10 overlap | alone vs in batches"
    print(f"| candidate | ops ONNX Runtime runs | {loads} | {quality} |")
    print("|---" * (7 + len(LOADS)) + "|")
    cells = [f"{r.texts_per_s:.0f}/s" for r in fp32_rates.values()]
    print(f"| fp32 | | {' | '.join(cells)} | 1 | 1 | 1 | 1 | |")
    for name, graph in built.items():
        q = qualities[name]
        cells = [
            f"{rates[name][load].texts_per_s:.0f}/s "
            f"({rates[name][load].texts_per_s / fp32_rates[load].texts_per_s:.2f}x)"
            for load, _, _ in LOADS
        ]
        print(
            f"| {name} | {ops_run(graph, workdir)} | {' | '.join(cells)} | {q.mean_cosine:.4f} | "
            f"{q.min_cosine:.4f} | {q.nn_agreement:.3f} | {q.top10_overlap:.3f} | "
            f"{q.invariance:.7f} |",
            flush=True,
        )
    (workdir / "qualities.json").write_text(
        json.dumps({name: vars(q) for name, q in qualities.items()}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
