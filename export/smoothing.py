"""Smoothing (SmoothQuant): move activation outliers into the weights before int8, exactly.

One static scale per activation tensor meets a few outlier channels (LayerNorm outputs reach
-17..+30 in some channels while the rest sit within +-3; post-GELU inputs have long tails): the
outliers set the scale and every other channel keeps a handful of int8 levels. For a product
X @ W, dividing input channel j of X by s_j and multiplying row j of W by s_j changes nothing in
exact arithmetic, and with s_j = max|X_j|^a / max|W_j|^(1-a) both sides become int8-friendly
(a = 0.5 splits the difficulty evenly; weights are quantised per output channel, so a row scaled
up costs them little).

The division is folded where it is free:
- after a LayerNormalization: into a copy of it with gamma/s and beta/s (a copy, because the
  residual path reads the original output too);
- after a contrib `Attention`: into the V columns of its packed QKV weight and bias (its output
  is softmax-weighted V, so per-channel factors pass straight through);
- anywhere else (the FFN down-projection after GELU): an elementwise Mul by 1/s.
Products reading one tensor (Q, K and V; a SwiGLU's gate and up) share one set of factors.
Nothing here knows a model family: products are found by op type and constant weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from attnserve.export.calibration import MS_DOMAIN, real_token_values
from attnserve.export.fusion import prune_dead_nodes
from attnserve.export.onnx_files import save_graph
from attnserve.export.vector_check import Feeder

ALPHA = 0.5
FACTOR_LIMITS = (1e-4, 1e4)  # a channel never seen (max 0) or a dead weight row keeps 1


def is_product(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """A MatMul by a constant 2-D weight, or a contrib Attention (its packed QKV weight)."""
    weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None or len(weight.dims) != 2:
        return False
    return node.op_type == "MatMul" or (node.op_type == "Attention" and node.domain == MS_DOMAIN)


def products_by_input(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Each activation tensor that feeds constant-weight products, and those products."""
    initializers = {init.name: init for init in model.graph.initializer}
    groups: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        if is_product(node, initializers) and node.input[0] not in initializers:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def channel_maxima(
    fp32_path: Path, tensors: Sequence[str], feed: Feeder, texts: Sequence[str]
) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each tensor over the real tokens of `texts`."""
    maxima: dict[str, np.ndarray] = {}
    for name, values in real_token_values(fp32_path, tensors, feed, texts):
        seen = np.abs(values).reshape(-1, values.shape[-1]).max(axis=0)
        maxima[name] = np.maximum(maxima[name], seen) if name in maxima else seen
    return maxima


def smoothing_factors(x_max: np.ndarray, w_max: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = max|X_j|^a / max|W_j|^(1-a), 1 where either side is zero, bounded."""
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.power(x_max, alpha) / np.power(w_max, 1.0 - alpha)
    factors = np.where((x_max > 0) & (w_max > 0) & np.isfinite(factors), factors, 1.0)
    return np.clip(factors, *FACTOR_LIMITS).astype(np.float32)


class Smoother:
    """The graph's constants as arrays, rewritten in place, written back once at the end."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        self.producer = {out: node for node in model.graph.node for out in node.output}
        self.readers: dict[str, int] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers[name] = self.readers.get(name, 0) + 1
        self.added: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (after, new)

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            self.arrays[name] = numpy_helper.to_array(self.initializers[name]).astype(np.float32)
        return self.arrays[name]

    def constant(self, name: str, value: np.ndarray) -> str:
        self.model.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def owned(self, names: Sequence[str]) -> bool:
        """Constants that only one node reads: safe to rescale in place."""
        return all(name in self.initializers and self.readers.get(name) == 1 for name in names)

    def divide_input(
        self, tensor: str, factors: np.ndarray, readers: int, elementwise: bool
    ) -> str | None:
        """A tensor equal to `tensor / factors` (per last-axis channel), as cheaply as possible;
        None where only an elementwise Mul could and `elementwise` is off."""
        node = self.producer.get(tensor)
        smoothed = f"{tensor}.smoothed"
        if node is not None and node.op_type == "LayerNormalization" and len(node.input) == 3:
            gamma, beta = node.input[1], node.input[2]
            if gamma in self.initializers and beta in self.initializers:
                copy = onnx.NodeProto()
                copy.CopyFrom(node)
                copy.name = f"{smoothed}.layer_norm"  # unique: named after its output
                del copy.output[:]
                copy.output.append(smoothed)
                copy.input[1] = self.constant(f"{gamma}.smoothed", self.array(gamma) / factors)
                copy.input[2] = self.constant(f"{beta}.smoothed", self.array(beta) / factors)
                self.added.append((node, copy))
                return smoothed
        if (
            node is not None
            and node.op_type == "Attention"
            and node.domain == MS_DOMAIN
            and self.readers.get(tensor) == readers  # nothing else reads the attention
            and self.owned(node.input[1:3])
        ):
            weight, bias = self.array(node.input[1]), self.array(node.input[2])
            v = slice(2 * weight.shape[1] // 3, None)  # packed [Q | K | V] columns
            weight[:, v] /= factors
            bias[v] /= factors
            return tensor  # the attention's own output is the divided tensor now
        if node is None or not elementwise:
            return None  # a graph input: nothing to fold into
        inverse = self.constant(f"{tensor}.inverse_factors", (1.0 / factors).astype(np.float32))
        self.added.append(
            (node, helper.make_node("Mul", [tensor, inverse], [smoothed], name=f"{smoothed}.mul"))
        )
        return smoothed

    def finish(self) -> None:
        """Write rescaled constants back and each new node right after the one it follows."""
        for name, value in self.arrays.items():
            self.initializers[name].CopyFrom(numpy_helper.from_array(value, name))
        nodes = list(self.model.graph.node)
        for after, new in self.added:
            nodes.insert(next(i for i, n in enumerate(nodes) if n is after) + 1, new)
        del self.model.graph.node[:]
        self.model.graph.node.extend(nodes)
        prune_dead_nodes(self.model)


def smooth(
    fp32_path: Path,
    out_path: Path,
    feed: Feeder,
    texts: Sequence[str],
    alpha: float = ALPHA,
    elementwise: bool = True,
) -> int:
    """Write the smoothed fp32 graph (equal to the original up to rounding); returns how many
    activation tensors were smoothed. The factors come from `texts`' real tokens; `elementwise`
    off smooths only where the division folds into a LayerNorm or an attention."""
    model = onnx.load(str(fp32_path))
    groups = products_by_input(model)
    maxima = channel_maxima(fp32_path, list(groups), feed, texts)
    smoother = Smoother(model)
    smoothed = 0
    for tensor, products in groups.items():
        weights = [node.input[1] for node in products]
        if not smoother.owned(weights):
            continue
        w_max = np.max([np.abs(smoother.array(w)).max(axis=1) for w in weights], axis=0)
        factors = smoothing_factors(maxima[tensor], w_max, alpha)
        divided = smoother.divide_input(tensor, factors, len(products), elementwise)
        if divided is None:
            continue
        for node, weight in zip(products, weights, strict=True):
            smoother.array(weight)[:] *= factors[:, None]
            node.input[0] = divided
        smoothed += 1
    smoother.finish()
    save_graph(model, out_path)
    return smoothed
