"""Graph surgery for causal (decoder) models: each masked opset-23 `Attention` -> the same op
with `is_causal=1` and no mask input.

Why: torch's exporter turns the decoder's fused path into the standard `Attention` op (grouped
K/V heads kept as they are, never copied per query head) fed with an explicit (B, 1, T, T) float
mask, causal and padding combined. attnserve pads on the right, and says so in the manifest
(`padding_side`). Then the padding mask adds nothing for any row that is read: a real token at
position i < n sees keys 0..i, all of them real, and padded query rows are never returned (token
embeddings are cut to each text's length, pooling takes the last real token). So the kernel's own
causal masking is exact, and the (B, 1, T, T) mask is never built. The op stays the standard one,
which ONNX Runtime implements on CPU and CUDA (with grouped K/V heads); docs/benchmarks.md has the
measurements against the masked op, the contrib `GroupQueryAttention` and the unfused export.
"""

from __future__ import annotations

import onnx
from onnx import helper

from attnserve.export.fusion import attribute, prune_dead_nodes

STANDARD_DOMAINS = ("", "ai.onnx")


def make_attention_causal(model: onnx.ModelProto) -> int:
    """Rewrite every masked standard Attention in place; returns how many were rewritten."""
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "Attention" or node.domain not in STANDARD_DOMAINS:
            continue
        if attribute(node, "is_causal", 0) or attribute(node, "qk_matmul_output_mode", 0):
            raise ValueError(f"{node.name}: expected a masked, non-causal Attention")
        if len(node.input) != 4 or len([name for name in node.output if name]) != 1:
            raise ValueError(f"{node.name}: expected inputs Q, K, V, mask and one output")
        del node.input[3]
        for attr in node.attribute:
            if attr.name == "is_causal":
                node.attribute.remove(attr)
                break
        node.attribute.append(helper.make_attribute("is_causal", 1))
        rewritten += 1
    prune_dead_nodes(model)  # the (B, 1, T, T) mask now has no reader
    return rewritten
