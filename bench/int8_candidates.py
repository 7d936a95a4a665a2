"""int8 candidates side by side: served speed, cosine, retrieval agreement, batch invariance.

    python bench/int8_candidates.py quality --artifact DIR --workdir W [--held-out 1000]
    python bench/int8_candidates.py speed --artifact DIR --workdir W
    python bench/int8_candidates.py paired --artifact DIR --workdir W   (in-process only)

Two steps, so that only the timed one holds a shared machine's benchmark lock: `quality` builds
the candidates into W and measures them; `speed` serves each and prints the table.

Built from the artifact's fast fp32 graph, in one run on one machine:
- dynamic per-tensor: ONNX Runtime's `quantize_dynamic` (per-channel weights), as exports
  wrote before: activation scales from each batch;
- static QDQ: `quantize_static` in QDQ format with a `CalibrationDataReader` over the
  calibration mix, per-tensor weights, then per-channel weights;
- static scales on the integer ops (what the export writes): the dynamic graph with each
  `DynamicQuantizeLinear` replaced by a calibrated `QuantizeLinear` (`export.calibration`);
- the same with the feed-forward down-projections kept in fp32;
- smoothed first (`export.smoothing`, a=0.5: folded into LayerNorms and attentions only, or
  with the elementwise Mul before each down-projection too), then static scales;
- smoothed, with its 4, 8 or 16 most sensitive products (`quantize.product_errors`) in fp32.
Quality: `export.int8_gate` on the held-out mix against fp32. What ONNX Runtime's CPU provider
runs: the op counts of the graph after its own optimisations. Speed: each candidate served by
`attnserve serve` (the fp32 graph first, as the reference), the loads of `bench/serve.py`.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
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
    SENSITIVITY_TEXTS,
    ffn_down_projections,
    product_errors,
    quantize,
    quantize_dynamic_graph,
)
from attnserve.export.smoothing import smooth
from attnserve.export.vector_check import Feeder, PooledRunner, feeder
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import MANIFEST_FILE, Int8Spec, describe_file, verify
from attnserve.service.corpus import calibration_corpus, held_out_corpus, load_texts
from attnserve.service.sessions import open_session, session_options
from bench.common import machine_line, paired_medians
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
    shutil.rmtree(out, ignore_errors=True)
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


CANDIDATES = {
    "dynamic per-tensor (before)": "dynamic.onnx",
    "static QDQ, per-tensor weights": "qdq-tensor.onnx",
    "static QDQ, per-channel weights": "qdq-channel.onnx",
    "static scales, per-channel (before issue 33)": "static.onnx",
    "static scales, FFN down-projections fp32": "static-down-fp32.onnx",
    "smoothed (folds only), static": "smoothed.onnx",
    "smoothed with the GELU Mul, static": "smoothed-mul.onnx",
    "smoothed, 4 most sensitive fp32": "smoothed-k4.onnx",
    "smoothed, 8 most sensitive fp32": "smoothed-k8.onnx",
    "smoothed, 16 most sensitive fp32": "smoothed-k16.onnx",
}
QUALITIES = "qualities.json"


def builders(
    fp32: Path, workdir: Path, feed: Feeder, inputs: Sequence[str]
) -> dict[str, Callable[[Path], object]]:
    """How each candidate is made from the fp32 graph (smoothed graphs made once, on demand)."""
    calibration = calibration_corpus(CALIBRATION_TEXTS)
    down = ffn_down_projections(onnx.load(str(fp32), load_external_data=False))
    smoothed, with_mul = workdir / "fp32-smoothed.onnx", workdir / "fp32-smoothed-mul.onnx"
    ranked: list[str] = []

    def smoothed_graph(elementwise: bool) -> Path:
        path = with_mul if elementwise else smoothed
        if not path.exists():
            smooth(fp32, path, feed, calibration, elementwise=elementwise)
        return path

    def sensitive(kept: int) -> list[str]:
        if not ranked:
            step = max(1, len(calibration) // SENSITIVITY_TEXTS)
            ranked.extend(product_errors(smoothed_graph(False), feed, calibration[::step]))
        return ranked[:kept]

    names = list(CANDIDATES)
    return {
        names[0]: lambda out: quantize_dynamic_graph(fp32, out, []),
        names[1]: lambda out: static_qdq(fp32, out, feed, inputs, per_channel=False),
        names[2]: lambda out: static_qdq(fp32, out, feed, inputs, per_channel=True),
        names[3]: lambda out: quantize(fp32, out, [], feed, calibration),
        names[4]: lambda out: quantize(fp32, out, down, feed, calibration),
        names[5]: lambda out: quantize(smoothed_graph(False), out, [], feed, calibration),
        names[6]: lambda out: quantize(smoothed_graph(True), out, [], feed, calibration),
        names[7]: lambda out: quantize(smoothed_graph(False), out, sensitive(4), feed, calibration),
        names[8]: lambda out: quantize(smoothed_graph(False), out, sensitive(8), feed, calibration),
        names[9]: lambda out: quantize(
            smoothed_graph(False), out, sensitive(16), feed, calibration
        ),
    }


def build_and_measure(
    artifact: Path, workdir: Path, held_out_count: int, only: Sequence[str]
) -> None:
    manifest = verify(artifact)
    fp32_spec = manifest.graph("fast", "fp32")
    assert fp32_spec is not None
    fp32, inputs = artifact / fp32_spec.file, fp32_spec.inputs
    feed = feeder(ReferenceTokenizer(artifact / manifest.tokenizer.file, 256), inputs)
    held_out = held_out_corpus(held_out_count)
    reference = PooledRunner(fp32, feed).embed(held_out)
    figures = workdir / QUALITIES
    measured = json.loads(figures.read_text()) if figures.exists() else {}
    for name, build in builders(fp32, workdir, feed, inputs).items():
        if only and not any(word in name for word in only):
            continue
        path = workdir / CANDIDATES[name]
        build(path)
        quality = measure(reference, PooledRunner(path, feed), held_out)
        measured[name] = {**vars(quality), "ops": ops_run(path, workdir)}
        print(f"{name}: {quality.said()}; runs {measured[name]['ops']}", flush=True)
        figures.write_text(json.dumps(measured, indent=2))


def one_call(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    return lambda: session.run(["pooled"], feeds)


def paired_raw(
    artifact: Path, workdir: Path, texts: Sequence[str], chosen: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Median ms per call of each graph in-process, interleaved round by round (drift-proof):
    one short text, and 16 texts of similar length (as the batcher forms them)."""
    manifest = verify(artifact)
    fp32 = manifest.graph("fast", "fp32")
    assert fp32 is not None
    tokenizer = ReferenceTokenizer(artifact / manifest.tokenizer.file, 256)
    feed = feeder(tokenizer, fp32.inputs)
    graphs = {"fp32": artifact / fp32.file, **{n: workdir / f for n, f in chosen.items()}}
    sessions = {n: open_session(p, threads=2) for n, p in graphs.items()}
    by_length = sorted(texts[:400], key=len)
    shapes = {"1 text": [by_length[50]], "16 texts": by_length[200:216]}
    medians = {}
    for shape, batch in shapes.items():
        feeds = dict(feed(batch))
        medians[shape] = paired_medians(
            {n: one_call(session, feeds) for n, session in sessions.items()}, budget_s=8.0
        )
    return medians


def serve_and_compare(
    artifact: Path,
    workdir: Path,
    corpus: str,
    duration: float,
    only: Sequence[str],
    served_too: bool = True,
) -> None:
    chosen = {
        n: f
        for n, f in CANDIDATES.items()
        if (workdir / f).exists() and (not only or any(w in n for w in only))
    }
    texts = load_texts(corpus)
    print(f"machine: {machine_line()}")
    print(f"served texts: {corpus}; {duration:.0f} s per load\n")
    raw = paired_raw(artifact, workdir, texts, chosen)
    print("raw ONNX Runtime, paired rounds (median ms per call; x: fp32's time over this one's):")
    for shape, medians in raw.items():
        said = ", ".join(
            f"{n} {m * 1000:.2f} ms ({medians['fp32'] / m:.2f}x)" for n, m in medians.items()
        )
        print(f"- {shape}: {said}")
    print()
    if not served_too:
        return
    measured = json.loads((workdir / QUALITIES).read_text())
    rates = {"fp32": served(artifact, workdir, texts, duration, ["--precision", "fp32"])}
    for name, file in chosen.items():
        figures = measured[name]
        quality = Int8Quality(**{k: v for k, v in figures.items() if k != "ops"})
        swapped = candidate_artifact(artifact, workdir / file, quality, name)
        rates[name] = served(swapped, workdir, texts, duration, ["--precision", "int8"])
    fp32_rates = rates["fp32"]
    loads = " | ".join(name for name, _, _ in LOADS)
    quality_columns = "mean cos | min cos | NN agreement | top-10 overlap | alone vs in batches"
    print(f"| candidate | ops ONNX Runtime runs | {loads} | {quality_columns} |")
    print("|---" * (7 + len(LOADS)) + "|")
    cells = [f"{r.texts_per_s:.0f}/s" for r in fp32_rates.values()]
    print(f"| fp32 | | {' | '.join(cells)} | 1 | 1 | 1 | 1 | |")
    for name in chosen:
        q = measured[name]
        cells = [
            f"{rates[name][load].texts_per_s:.0f}/s "
            f"({rates[name][load].texts_per_s / fp32_rates[load].texts_per_s:.2f}x)"
            for load, _, _ in LOADS
        ]
        print(
            f"| {name} | {q['ops']} | {' | '.join(cells)} | {q['mean_cosine']:.4f} | "
            f"{q['min_cosine']:.4f} | {q['nn_agreement']:.3f} | {q['top10_overlap']:.3f} | "
            f"{q['invariance']:.7f} |",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=("quality", "speed", "paired"))
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="candidates and figures")
    parser.add_argument("--held-out", type=int, default=1000, help="quality: texts")
    parser.add_argument("--duration", type=float, default=4.0, help="speed: seconds per load")
    parser.add_argument("--corpus", default="mixed", help="speed: a named mix or a file")
    parser.add_argument(
        "--only", nargs="*", default=[], help="candidates whose name holds one of these"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.step == "quality":
        build_and_measure(args.artifact, args.workdir, args.held_out, args.only)
    else:
        serve_and_compare(
            args.artifact, args.workdir, args.corpus, args.duration, args.only,
            served_too=args.step == "speed",
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
