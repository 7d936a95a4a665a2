"""Fused against plain attention for a family whose attention mask carries more than padding
(MPNet's relative position bias, ModernBERT's window), paired in one process.

    python bench/family_attention.py --checkpoint DIR [--quick]

Graphs, each checked against the PyTorch model first (max |diff| of token vectors):
- plain: the explicit path exported (MatMul, Add bias/mask, Softmax, MatMul);
- standard: the fused path as exported, one opset-23 Attention per layer with the additive mask;
- contrib: each standard Attention and its Q/K/V projections folded into ONNX Runtime's
  com.microsoft.Attention, the additive mask as its attention_bias (only where Q, K and V are
  plain projections: not ModernBERT, whose Q and K are rotated first).
Sentences/s per cell (batch x tokens, random ids, no padding), 2 threads everywhere.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.fusion import fuse_attention
from attnserve.export.graphs import FAST_OUTPUTS, FastGraph, export_graph
from attnserve.export.onnx_files import save_graph
from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.embedding_model import EmbeddingModel
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians

THREADS = 2
CELLS = ((1, 128), (8, 128), (1, 512), (8, 512))
QUICK_CELLS = ((1, 128), (8, 128))


def build_graphs(model: EmbeddingModel, workdir: Path) -> dict[str, Path]:
    inputs = model.config.inputs
    graphs = {"plain": workdir / "plain.onnx", "standard": workdir / "standard.onnx"}
    export_graph(FastGraph(model, "explicit"), FAST_OUTPUTS, graphs["plain"], inputs)
    export_graph(FastGraph(model, "sdpa"), FAST_OUTPUTS, graphs["standard"], inputs)
    graph = onnx.load(str(graphs["standard"]))
    try:
        fuse_attention(graph, model.config.num_heads, mask_as_bias=True)
    except ValueError as exc:  # e.g. rotated Q/K: not plain projections
        print(f"contrib: not applicable ({exc})")
    else:
        graphs["contrib"] = workdir / "contrib.onnx"
        save_graph(graph, graphs["contrib"])
    return graphs


def feeds_for(model: EmbeddingModel, batch: int, tokens: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, model.config.vocab_size, size=(batch, tokens), dtype=np.int64)
    every = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return {name: every[name] for name in model.config.inputs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="two cells, short budgets")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    model, checkpoint = load_checkpoint(args.checkpoint)
    cells = [c for c in (QUICK_CELLS if args.quick else CELLS) if c[1] <= checkpoint.max_seq_length]
    with tempfile.TemporaryDirectory() as scratch:
        graphs = build_graphs(model, Path(scratch))
        sessions = {name: open_session(path, threads=THREADS, spinning=False)
                    for name, path in graphs.items()}  # fmt: skip
        check = feeds_for(model, 2, 64)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in check.items()}).last_hidden_state
        for name, session in sessions.items():
            diff = np.abs(session.run(None, check)[0] - expected.numpy()).max()
            print(f"{name}: max |diff| vs PyTorch {diff:.1e}")
        print(f"\n{checkpoint.name} ({model.config.family.value}, {model.config.num_layers} "
              f"layers, {model.config.hidden_size} wide); {machine_line()}")  # fmt: skip
        names = list(sessions)
        print("| batch x tokens | " + " | ".join(f"{n} sent/s" for n in names) + " | vs plain |")
        print("|---" * (len(names) + 2) + "|")
        for batch, tokens in cells:
            feeds = feeds_for(model, batch, tokens)
            paths: dict[str, Callable[[], object]] = {
                name: partial(session.run, None, feeds) for name, session in sessions.items()
            }
            seconds = paired_medians(paths, budget_s=2.0 if args.quick else 8.0)
            rates = {name: batch / seconds[name] for name in names}
            ratios = ", ".join(f"{n} {rates[n] / rates['plain']:.2f}x" for n in names[1:])
            cells_text = " | ".join(f"{rates[n]:.1f}" for n in names)
            print(f"| {batch} x {tokens} | {cells_text} | {ratios} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
