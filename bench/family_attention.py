"""Fused against plain attention for a family whose attention mask carries more than padding
(MPNet's relative position bias, ModernBERT's window), paired in one process.

    python bench/family_attention.py --checkpoint DIR [--quick]
    python bench/family_attention.py --random-modernbert [--quick]

`--random-modernbert` builds ModernBERT at ModernBERT-base's layer shape (768 wide, 12 heads,
GeGLU 1152, a 128-token window, every 3rd layer global), 6 layers, random weights, saved as a
sentence-transformers folder (tests/support/mpnet_modernbert_checkpoints.py).

Graphs, each checked against the PyTorch model first (max |diff| of token vectors):
- plain: the explicit path exported (MatMul, Add bias/mask, Softmax, MatMul);
- standard: the fused path as exported, one opset-23 Attention per layer with the additive mask;
- contrib: each standard Attention and its Q/K/V projections folded into ONNX Runtime's
  com.microsoft.Attention, the additive mask as its attention_bias (only where Q, K and V are
  plain projections: not ModernBERT, whose Q and K are rotated first).
- ST: sentence-transformers' own model forward on the same checkpoint folder and the same ids
  (no tokenising), the peer a user would otherwise run.
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
from sentence_transformers import SentenceTransformer

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.fusion import fuse_attention
from attnserve.export.graphs import FAST_OUTPUTS, FastGraph, export_graph
from attnserve.export.onnx_files import save_graph
from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.embedding_model import EmbeddingModel
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians
from bench.families import st_forward
from tests.support.mpnet_modernbert_checkpoints import modernbert_base_shape

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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a sentence-transformers folder")
    source.add_argument("--random-modernbert", action="store_true", help="see above")
    parser.add_argument("--quick", action="store_true", help="two cells, short budgets")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.checkpoint or modernbert_base_shape(Path(scratch))
        model, checkpoint = load_checkpoint(folder)
        cells = [c for c in (QUICK_CELLS if args.quick else CELLS)
                 if c[1] <= checkpoint.max_seq_length]  # fmt: skip
        graphs = build_graphs(model, Path(scratch))
        sessions = {name: open_session(path, threads=THREADS, spinning=False)
                    for name, path in graphs.items()}  # fmt: skip
        st_model = SentenceTransformer(str(folder), device="cpu")
        check = feeds_for(model, 2, 64)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in check.items()}).last_hidden_state
        for name, session in sessions.items():
            diff = np.abs(session.run(None, check)[0] - expected.numpy()).max()
            print(f"{name}: max |diff| vs PyTorch {diff:.1e}")
        print(f"\n{checkpoint.name} ({model.config.family.value}, {model.config.num_layers} "
              f"layers, {model.config.hidden_size} wide); {machine_line()}")  # fmt: skip
        names = list(sessions)
        heading = " | ".join(f"{n} sent/s" for n in [*names, "ST"])
        print(f"| batch x tokens | {heading} | vs plain | standard vs ST |")
        print("|---" * (len(names) + 4) + "|")
        for batch, tokens in cells:
            feeds = feeds_for(model, batch, tokens)
            paths: dict[str, Callable[[], object]] = {
                name: partial(session.run, None, feeds) for name, session in sessions.items()
            }
            torch_feeds = {name: torch.from_numpy(value) for name, value in feeds.items()}
            paths["ST"] = partial(st_forward, st_model, torch_feeds)
            seconds = paired_medians(paths, budget_s=2.0 if args.quick else 8.0)
            rates = {name: batch / seconds[name] for name in [*names, "ST"]}
            ratios = ", ".join(f"{n} {rates[n] / rates['plain']:.2f}x" for n in names[1:])
            cells_text = " | ".join(f"{rates[n]:.1f}" for n in [*names, "ST"])
            standard = rates["standard"] / rates["ST"]
            print(f"| {batch} x {tokens} | {cells_text} | {ratios} | {standard:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
