"""Export benchmark: the same batches through every path, paired in one process.

    python bench/export.py [--artifact DIR] [--quick]

Rows: batch {1, 8, 32} x tokens {16, 128, 512}. Columns: PyTorch (eager, our encoder), the
plain ONNX export (explicit attention: MatMul/Softmax/MatMul), ONNX Runtime's contrib optimizer
applied to a TorchScript export, the fast graph (one opset-23 Attention per layer), the maps
graph (also returns probabilities), int8, and sentence-transformers where it applies (it caps
this model at 256 tokens). Sentences/s and p50 latency per cell; 2 threads everywhere.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sentence_transformers import SentenceTransformer

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.artifact import build_artifact
from attnserve.export.graphs import FAST_OUTPUTS, FastGraph, export_graph
from attnserve.model import Encoder
from attnserve.model.checkpoint import load_checkpoint
from attnserve.service.artifact import verify
from attnserve.service.padding import INPUT_NAMES
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians

THREADS = 2
BATCHES = (1, 8, 32)
TOKENS = (16, 128, 512)


def ort_session(path: Path) -> ort.InferenceSession:
    # Idle threads sleep instead of spinning: several sessions share two cores in this run.
    return open_session(path, threads=THREADS, spinning=False)


def contrib_graph(workdir: Path) -> Path:
    """TorchScript export of the explicit path, then onnxruntime's BERT optimizer."""
    from onnxruntime.transformers.optimizer import optimize_model

    encoder, _ = load_checkpoint()
    source = workdir / "torchscript.onnx"
    example = (
        torch.full((2, 8), 1000),
        torch.ones(2, 8, dtype=torch.long),
        torch.zeros(2, 8, dtype=torch.long),
    )
    axes = {name: {0: "batch", 1: "seq"} for name in (*INPUT_NAMES, "token_embeddings")}
    torch.onnx.export(
        FastGraph(encoder).eval(), example, str(source), dynamo=False, opset_version=17,
        input_names=list(INPUT_NAMES), output_names=list(FAST_OUTPUTS),
        dynamic_axes=axes | {"pooled": {0: "batch"}},
    )  # fmt: skip
    optimized = optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384)
    path = workdir / "contrib.onnx"
    optimized.save_model_to_file(str(path))
    return path


def plain_graph(workdir: Path) -> Path:
    encoder, _ = load_checkpoint()
    path = workdir / "plain.onnx"
    export_graph(FastGraph(encoder, attention_impl="explicit"), FAST_OUTPUTS, path)
    return path


def feeds_for(batch: int, tokens: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + tokens)
    ids = rng.integers(1000, 29000, size=(batch, tokens), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }


def run_torch(encoder: Encoder, feeds: dict[str, torch.Tensor]) -> object:
    with torch.inference_mode():
        return encoder(**feeds)


def run_session(
    session: ort.InferenceSession, outputs: list[str], feeds: dict[str, np.ndarray]
) -> object:
    return session.run(outputs, feeds)


def paths_for(
    batch: int,
    tokens: int,
    encoder: Encoder,
    sessions: dict[str, ort.InferenceSession],
    st_model: SentenceTransformer,
) -> dict[str, Callable[[], object]]:
    feeds = feeds_for(batch, tokens)
    torch_feeds = {name: torch.from_numpy(value) for name, value in feeds.items()}
    paths: dict[str, Callable[[], object]] = {"PyTorch": partial(run_torch, encoder, torch_feeds)}
    for name, session in sessions.items():
        outputs = ["pooled", "attentions"] if name == "maps" else ["pooled"]
        paths[name] = partial(run_session, session, outputs, feeds)
    if tokens <= 256:  # sentence-transformers truncates this model at 256 tokens
        texts = [" ".join(["word"] * (tokens - 2))] * batch  # "word" is one token
        paths["sentence-transformers"] = partial(st_model.encode, texts, batch_size=batch)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None, help="artifact (default: build)")
    parser.add_argument("--quick", action="store_true", help="tokens 16 and 128 only")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-bench-"))
    artifact = args.artifact or workdir / "artifact"
    if args.artifact is None:
        build_artifact(artifact)
    manifest = verify(artifact)
    graphs = {f"{g.purpose}/{g.precision}": artifact / g.file for g in manifest.graphs}
    sessions = {
        "plain ONNX": ort_session(plain_graph(workdir)),
        "contrib-optimized": ort_session(contrib_graph(workdir)),
        "fast fp32": ort_session(graphs["fast/fp32"]),
        "maps": ort_session(graphs["maps/fp32"]),
        "fast int8": ort_session(graphs["fast/int8"]),
    }
    encoder, checkpoint = load_checkpoint()
    assert isinstance(encoder, Encoder)  # the packaged all-MiniLM-L6-v2
    encoder.attention_impl = "sdpa"  # the PyTorch column times the fused path
    st_model = SentenceTransformer(str(checkpoint.directory), device="cpu")

    print(f"machine: {machine_line()}; {THREADS} threads (torch and ONNX Runtime intra-op)\n")
    names = ["PyTorch", *sessions, "sentence-transformers"]
    print("| batch x tokens | " + " | ".join(names) + " | fast/plain | int8/fast | fast/ST |")
    print("|---|" + "---|" * (len(names) + 3))
    for tokens in TOKENS[:2] if args.quick else TOKENS:
        for batch in BATCHES:
            paths = paths_for(batch, tokens, encoder, sessions, st_model)
            medians = paired_medians(paths)
            cells = []
            for name in names:
                if name in medians:
                    cells.append(f"{batch / medians[name]:.0f}/s, {medians[name] * 1000:.1f} ms")
                else:
                    cells.append("n/a")
            fast = medians["fast fp32"]
            ratios = [
                f"{medians['plain ONNX'] / fast:.2f}x",
                f"{fast / medians['fast int8']:.2f}x",
                f"{medians['sentence-transformers'] / fast:.2f}x"
                if "sentence-transformers" in medians
                else "n/a",
            ]
            print(f"| {batch} x {tokens} | " + " | ".join(cells + ratios) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
