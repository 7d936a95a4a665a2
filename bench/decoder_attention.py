"""Decoder fast-graph candidates: which exact fused attention form ONNX Runtime runs fastest.

    python bench/decoder_attention.py [--checkpoint DIR] [--layers N] [--quick]

Without --checkpoint it builds a random checkpoint with Qwen3-Embedding-0.6B's layer shape
(hidden 1024, 16 query heads sharing 8 K/V heads of 128, SwiGLU 3072; `--layers`, default 2,
and a small vocabulary): timing depends on shapes, not on trained weights. Columns, one graph
each, all exported from `model/decoder.py` and checked exact against it on a right-padded batch
before they are timed:

- plain: the explicit path (MatMul, Softmax, MatMul; K/V heads repeated per query head);
- masked Attention: the standard opset-23 `Attention` as torch exports it from the sdpa path,
  with a (B, 1, T, T) float mask (causal and padding);
- causal Attention: the same op with `is_causal=1` and no mask (`export/causal_attention.py`,
  what the artifact ships);
- GroupQueryAttention: ONNX Runtime's contrib `com.microsoft.GroupQueryAttention` in its place
  (BSH layout, `seqlens_k` from the mask, right padding), rewritten here for the comparison.

Paired medians (bench/common.py), 2 intra-op threads, no spinning; cells are milliseconds per
call and the speed-up over plain. A second table times the attention op alone (one layer's
Q, K, V in, context out; the same four forms), where the forms differ and nothing else does:
many more rounds fit, so it stays readable on a busy machine.
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
from onnx import TensorProto, helper, numpy_helper

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.causal_attention import make_attention_causal
from attnserve.export.fusion import prune_dead_nodes
from attnserve.export.graphs import DECODER_INPUTS, FAST_OUTPUTS, FastGraph, export_graph
from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.decoder import Decoder
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians

THREADS = 2
SHAPES = ((1, 16), (8, 16), (1, 128), (8, 128), (1, 512), (4, 512))
VOCAB = 8000


def random_checkpoint(directory: Path, layers: int) -> Path:
    """Qwen3-Embedding-0.6B's layer shape, random weights, saved by transformers."""
    from tokenizers import Tokenizer, models
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=VOCAB, hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=4096,
    )  # fmt: skip
    Qwen3Model(config).save_pretrained(directory)
    Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")).save(
        str(directory / "tokenizer.json")
    )  # never used: the benchmark feeds token ids
    return directory


def group_query_attention(source: Path, target: Path, model: Decoder) -> None:
    """Each standard Attention -> com.microsoft.GroupQueryAttention (prompt mode, no cache)."""
    config = model.config
    graph = onnx.load(str(source))
    graph.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([0, 0, -1], np.int64), "gqa_bsh"),
            numpy_helper.from_array(
                np.array([0, 0, config.num_heads, config.head_dim], np.int64), "gqa_bsnh"
            ),
            numpy_helper.from_array(np.array([1], np.int64), "gqa_axis1"),
            numpy_helper.from_array(np.array(1, np.int64), "gqa_one"),
        ]
    )
    shared = [  # seqlens_k = real length - 1 per row; total_sequence_length = T
        helper.make_node("ReduceSum", ["attention_mask", "gqa_axis1"], ["gqa_len"], keepdims=0),
        helper.make_node("Sub", ["gqa_len", "gqa_one"], ["gqa_last"]),
        helper.make_node("Cast", ["gqa_last"], ["gqa_seqlens_k"], to=TensorProto.INT32),
        helper.make_node("Shape", ["input_ids"], ["gqa_t"], start=1, end=2),
        helper.make_node("Squeeze", ["gqa_t"], ["gqa_t_scalar"]),
        helper.make_node("Cast", ["gqa_t_scalar"], ["gqa_total"], to=TensorProto.INT32),
    ]
    nodes = []
    swap = [0, 2, 1, 3]
    for index, node in enumerate(graph.graph.node):
        if node.op_type != "Attention":
            nodes.append(node)
            continue
        flat = []
        for which, name in enumerate(node.input[:3]):  # (B, heads, T, d) -> (B, T, heads * d)
            moved, merged = f"gqa{index}_{which}_t", f"gqa{index}_{which}"
            nodes.append(helper.make_node("Transpose", [name], [moved], perm=swap))
            nodes.append(helper.make_node("Reshape", [moved, "gqa_bsh"], [merged]))
            flat.append(merged)
        nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                [*flat, "", "", "gqa_seqlens_k", "gqa_total"],
                [f"gqa{index}_out", f"gqa{index}_key", f"gqa{index}_value"],
                domain="com.microsoft",
                num_heads=config.num_heads,
                kv_num_heads=config.num_kv_heads,
            )
        )
        split = f"gqa{index}_4d"  # back to (B, heads, T, d) for the unchanged rest
        nodes.append(helper.make_node("Reshape", [f"gqa{index}_out", "gqa_bsnh"], [split]))
        nodes.append(helper.make_node("Transpose", [split], [node.output[0]], perm=swap))
    graph.graph.ClearField("node")
    graph.graph.node.extend(shared + nodes)
    graph.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    prune_dead_nodes(graph)
    onnx.save(graph, str(target))


def candidates(model: Decoder, workdir: Path) -> dict[str, Path]:
    paths = {name: workdir / f"{name}.onnx" for name in ("plain", "masked", "causal", "gqa")}
    export_graph(FastGraph(model, "explicit"), FAST_OUTPUTS, paths["plain"], DECODER_INPUTS)
    export_graph(FastGraph(model, "sdpa"), FAST_OUTPUTS, paths["masked"], DECODER_INPUTS)
    causal = onnx.load(str(paths["masked"]))
    make_attention_causal(causal)
    onnx.save(causal, str(paths["causal"]))
    group_query_attention(paths["masked"], paths["gqa"], model)
    return {
        "plain": paths["plain"],
        "masked Attention": paths["masked"],
        "causal Attention": paths["causal"],
        "GroupQueryAttention": paths["gqa"],
    }


def check_exact(model: Decoder, graphs: dict[str, Path]) -> None:
    """Right-padded rows of mixed lengths: every candidate equals the PyTorch model."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(4, 24)).astype(np.int64)
    mask = np.ones_like(ids)
    for row, length in enumerate((24, 17, 5, 1)):
        mask[row, length:], ids[row, length:] = 0, 0
    with torch.no_grad():
        expected = model(torch.from_numpy(ids), torch.from_numpy(mask), normalize=False)
    real = mask.astype(bool)
    for name, path in graphs.items():
        tokens = open_session(path).run(
            ["token_embeddings"], {"input_ids": ids, "attention_mask": mask}
        )[0]
        diff = float(np.abs(tokens - expected.last_hidden_state.numpy())[real].max())
        print(f"{name}: max abs difference to PyTorch {diff:.1e} on real tokens")
        assert diff < 1e-4, name


def attention_alone(form: str, heads: int, kv_heads: int, head_dim: int) -> onnx.ModelProto:
    """One layer's attention as each form computes it: Q (B, heads, T, d), K and V with kv_heads
    (BSH for the contrib op, as ONNX Runtime sees it once the exporter's transposes cancel)."""
    f = TensorProto.FLOAT
    bsh = form == "GroupQueryAttention"
    q_shape: list[str | int] = ["B", "T", heads * head_dim] if bsh else ["B", heads, "T", head_dim]
    kv_shape: list[str | int] = (
        ["B", "T", kv_heads * head_dim] if bsh else ["B", kv_heads, "T", head_dim]
    )
    inputs = [
        helper.make_tensor_value_info("q", f, q_shape),
        helper.make_tensor_value_info("k", f, kv_shape),
        helper.make_tensor_value_info("v", f, kv_shape),
    ]
    out_shape = q_shape
    output = [helper.make_tensor_value_info("out", f, out_shape)]
    nodes: list[onnx.NodeProto] = []
    if form == "plain":  # K/V repeated per query head, scores, additive mask, softmax, weighted V
        inputs.append(helper.make_tensor_value_info("mask", f, ["B", 1, "T", "T"]))
        group = heads // kv_heads
        shape = numpy_helper.from_array(np.array([0, heads, -1, head_dim], np.int64), "shape")
        scale = numpy_helper.from_array(np.array(head_dim**-0.5, np.float32), "scale")
        for name in ("k", "v"):  # (B, kv, T, d) -> (B, kv, group, T, d) -> (B, heads, T, d)
            nodes.append(helper.make_node("Unsqueeze", [name, "axis2"], [f"{name}5"]))
            nodes.append(helper.make_node("Tile", [f"{name}5", "repeat5"], [f"{name}t"]))
            nodes.append(helper.make_node("Reshape", [f"{name}t", "shape"], [f"{name}r"]))
        nodes += [
            helper.make_node("Transpose", ["kr"], ["kT"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kT"], ["raw"]),
            helper.make_node("Mul", ["raw", "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "mask"], ["masked"]),
            helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
            helper.make_node("MatMul", ["probs", "vr"], ["out"]),
        ]
        constants = [
            shape,
            scale,
            numpy_helper.from_array(np.array([2], np.int64), "axis2"),
            numpy_helper.from_array(np.array([1, 1, group, 1, 1], np.int64), "repeat5"),
        ]
    elif form == "masked Attention":
        inputs.append(helper.make_tensor_value_info("mask", f, ["B", 1, "T", "T"]))
        nodes = [helper.make_node("Attention", ["q", "k", "v", "mask"], ["out"])]
        constants = []
    elif form == "causal Attention":
        nodes = [helper.make_node("Attention", ["q", "k", "v"], ["out"], is_causal=1)]
        constants = []
    else:
        inputs += [
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
            helper.make_tensor_value_info("total", TensorProto.INT32, []),
        ]
        nodes = [
            helper.make_node(
                "GroupQueryAttention",
                ["q", "k", "v", "", "", "seqlens_k", "total"],
                ["out", "present_key", "present_value"],
                domain="com.microsoft",
                num_heads=heads,
                kv_num_heads=kv_heads,
            )
        ]
        constants = []
    graph = helper.make_graph(nodes, form, inputs, output, initializer=constants)
    opsets = [helper.make_opsetid("", 23), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def attention_feeds(
    form: str, batch: int, tokens: int, heads: int, kv_heads: int, head_dim: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 1000 + tokens)
    q = rng.standard_normal((batch, heads, tokens, head_dim), dtype=np.float32)
    k = rng.standard_normal((batch, kv_heads, tokens, head_dim), dtype=np.float32)
    v = rng.standard_normal((batch, kv_heads, tokens, head_dim), dtype=np.float32)
    if form == "GroupQueryAttention":
        return {
            "q": q.transpose(0, 2, 1, 3).reshape(batch, tokens, -1).copy(),
            "k": k.transpose(0, 2, 1, 3).reshape(batch, tokens, -1).copy(),
            "v": v.transpose(0, 2, 1, 3).reshape(batch, tokens, -1).copy(),
            "seqlens_k": np.full((batch,), tokens - 1, np.int32),
            "total": np.array(tokens, np.int32),
        }
    feeds = {"q": q, "k": k, "v": v}
    if form in ("plain", "masked Attention"):
        future = np.triu(np.ones((tokens, tokens), dtype=bool), k=1)
        mask = np.where(future, np.finfo(np.float32).min, 0.0).astype(np.float32)
        feeds["mask"] = np.broadcast_to(mask, (batch, 1, tokens, tokens)).copy()
    return feeds


def time_attention_alone(model: Decoder, workdir: Path, shapes: list[tuple[int, int]]) -> None:
    config = model.config
    dims = (config.num_heads, config.num_kv_heads, config.head_dim)
    forms = ("plain", "masked Attention", "causal Attention", "GroupQueryAttention")
    sessions = {}
    for form in forms:
        path = workdir / f"alone-{form.replace(' ', '-')}.onnx"
        onnx.save(attention_alone(form, *dims), str(path))
        sessions[form] = open_session(path, threads=THREADS)
    reference = None
    for form in forms:  # the same maths: one causal batch, every form's context equal
        out = sessions[form].run(None, attention_feeds(form, 2, 24, *dims))[0]
        if form == "GroupQueryAttention":
            out = out.reshape(2, 24, config.num_heads, -1).transpose(0, 2, 1, 3)
        reference = out if reference is None else reference
        assert np.abs(out - reference).max() < 1e-4, form
    print(f"\nthe attention op alone ({dims[0]} query heads, {dims[1]} K/V heads of {dims[2]}):\n")
    print("| batch x tokens | " + " | ".join(forms) + " |")
    print("|---|" + "---|" * len(forms))
    for batch, tokens in shapes:
        paths: dict[str, Callable[[], object]] = {
            form: partial(sessions[form].run, None, attention_feeds(form, batch, tokens, *dims))
            for form in forms
        }
        medians = paired_medians(paths, min_rounds=20, max_rounds=200, budget_s=8.0)
        plain = medians["plain"]
        cells = [f"{medians[f] * 1000:.2f} ms ({plain / medians[f]:.2f}x)" for f in forms]
        print(f"| {batch} x {tokens} | " + " | ".join(cells) + " |", flush=True)


def feeds_for(batch: int, tokens: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(batch * 1000 + tokens).integers(1, VOCAB, size=(batch, tokens))
    return {"input_ids": ids.astype(np.int64), "attention_mask": np.ones((batch, tokens), np.int64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a Qwen3/Qwen2 checkpoint")
    parser.add_argument("--layers", type=int, default=2, help="layers of the random checkpoint")
    parser.add_argument("--quick", action="store_true", help="tokens 16 and 128 only")
    parser.add_argument(
        "--op-only", action="store_true", help="only the attention op alone (second table)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-decoder-bench-"))
    checkpoint = args.checkpoint or random_checkpoint(workdir / "checkpoint", args.layers)
    model, _ = load_checkpoint(checkpoint)
    assert isinstance(model, Decoder), f"{checkpoint} is not a decoder checkpoint"
    shapes = [s for s in SHAPES if s[1] <= 128] if args.quick else list(SHAPES)
    print(f"machine: {machine_line()}; {THREADS} intra-op threads, no spinning")
    time_attention_alone(model, workdir, shapes)
    if args.op_only:
        return 0
    graphs = candidates(model, workdir)
    check_exact(model, graphs)
    sessions = {name: open_session(path, threads=THREADS) for name, path in graphs.items()}
    print(f"\nwhole graphs ({model.config.num_layers} layers):\n")
    print("| batch x tokens | " + " | ".join(sessions) + " |")
    print("|---|" + "---|" * len(sessions))
    for batch, tokens in shapes:
        feeds = feeds_for(batch, tokens)
        paths: dict[str, Callable[[], object]] = {
            name: partial(session.run, ["pooled"], feeds) for name, session in sessions.items()
        }
        medians = paired_medians(paths, budget_s=10.0)
        plain = medians["plain"]
        cells = [f"{medians[name] * 1000:.1f} ms ({plain / medians[name]:.2f}x)" for name in paths]
        print(f"| {batch} x {tokens} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
