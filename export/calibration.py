"""Static activation scales for int8: measured once at export, so no batch can move them.

ONNX Runtime's dynamic quantisation (`quantize_dynamic`) puts a `DynamicQuantizeLinear` before
every int8 matrix product: one scale and zero point per tensor, computed from the whole batch at
run time, padding included. A text's vector then depends on whatever else the batcher put beside
it (cosine as low as 0.98 between the same text alone and in a batch). Here each of those nodes
becomes a `QuantizeLinear` whose scale and zero point are constants, fixed from the range the
tensor takes on a calibration corpus (real tokens only). Everything else stays as the dynamic
quantiser made it (per-channel int8 weights, `QAttention`, `MatMulInteger`), so ONNX Runtime
fuses the same integer kernels (`MatMulIntegerToFloat` instead of `DynamicQuantizeMatMul`) and
the speed stays; only the source of the activation scale changes.

One rewrite follows: ONNX Runtime fuses the quantiser's `MatMulInteger -> Cast -> Mul(scale)` into
one `MatMulIntegerToFloat` only while the scale is a product computed in the graph; with constant
scales its constant folding multiplies them first and the fusion no longer matches, leaving an
int32 tensor written, cast and scaled by three kernels. `fuse_scaled_matmuls` writes the fused op
itself.

Nothing here knows a model family: tensors are found by the quantiser's node type, ranges by
running the fp32 graph at `path` with those tensors as extra outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from attnserve.export.vector_check import Feeder
from attnserve.service.sessions import open_session

UINT8_LEVELS = 255
MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def widened(self, other: Range) -> Range:
        return Range(min(self.low, other.low), max(self.high, other.high))

    def scale_and_zero_point(self) -> tuple[float, int]:
        """uint8 with a zero point, as `DynamicQuantizeLinear` makes them: the range always
        holds 0 (padding and ReLU-like zeros stay exact)."""
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        scale = (high - low) / UINT8_LEVELS if high > low else 1.0
        return scale, int(np.clip(round(-low / scale), 0, UINT8_LEVELS))


def dynamic_inputs(model: onnx.ModelProto) -> list[str]:
    """The fp32 tensors the dynamic quantiser quantises at run time."""
    return [node.input[0] for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"]


def real_token_values(
    fp32_path: Path,
    tensors: Sequence[str],
    feed: Feeder,
    texts: Sequence[str],
    batch_size: int = 16,
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, values) of each tensor per batch of `texts` run through the fp32 graph; (B, T, ...)
    tensors keep their real tokens only, as (tokens, ...): padding rows hold whatever the layers
    make of padding, and no real token ever reads them."""
    model = onnx.load(str(fp32_path), load_external_data=False)  # weights stay where they are
    for name in tensors:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    probe = fp32_path.with_name(fp32_path.stem + ".calibration.onnx")  # beside its weights file
    onnx.save(model, str(probe))
    try:
        session = open_session(probe)
        inputs = [graph_input.name for graph_input in session.get_inputs()]
        ordered = sorted(texts, key=len)  # little padding
        for start in range(0, len(ordered), batch_size):
            feeds = feed(ordered[start : start + batch_size])
            real = feeds["attention_mask"].astype(bool)  # (B, T)
            for name, value in zip(
                tensors, session.run(list(tensors), {n: feeds[n] for n in inputs}), strict=True
            ):
                yield name, value[real] if value.shape[:2] == real.shape else value
    finally:
        probe.unlink(missing_ok=True)


def activation_ranges(
    fp32_path: Path,
    tensors: Sequence[str],
    feed: Feeder,
    texts: Sequence[str],
    batch_size: int = 16,
) -> dict[str, Range]:
    """Each tensor's min and max over the real tokens of `texts`, run through the fp32 graph."""
    ranges: dict[str, Range] = {}
    for name, values in real_token_values(fp32_path, tensors, feed, texts, batch_size):
        seen = Range(float(values.min()), float(values.max()))
        ranges[name] = ranges[name].widened(seen) if name in ranges else seen
    return ranges


def fix_activation_scales(model: onnx.ModelProto, ranges: dict[str, Range]) -> int:
    """Replace every `DynamicQuantizeLinear` with a `QuantizeLinear` of constant scale and zero
    point, under the same output names (its consumers are untouched). Returns how many."""
    nodes = []
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        quantized, scale_name, zero_point_name = node.output
        scale, zero_point = ranges[node.input[0]].scale_and_zero_point()
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name),
                numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), zero_point_name),
            ]
        )
        nodes.append(
            helper.make_node(
                "QuantizeLinear",
                [node.input[0], scale_name, zero_point_name],
                [quantized],
                name=node.name,
            )
        )
        fixed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return fixed


def fuse_scaled_matmuls(model: onnx.ModelProto) -> int:
    """`MatMulInteger -> Cast -> Mul(Mul(a_scale, b_scale))` -> one `MatMulIntegerToFloat`
    (ONNX Runtime's contrib op: int8 GEMM with the scaling in its epilogue). Returns how many."""
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    gone: set[int] = set()
    fused: dict[int, onnx.NodeProto] = {}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or len(consumers.get(node.output[0], [])) != 1:
            continue
        cast = consumers[node.output[0]][0]
        if cast.op_type != "Cast" or len(consumers.get(cast.output[0], [])) != 1:
            continue
        scale = consumers[cast.output[0]][0]
        product = producer.get(next((i for i in scale.input if i != cast.output[0]), ""))
        if scale.op_type != "Mul" or product is None or product.op_type != "Mul":
            continue
        a_scale, b_scale = product.input
        inputs = [node.input[0], node.input[1], a_scale, b_scale, *node.input[2:4]]
        fused[id(node)] = helper.make_node(
            "MatMulIntegerToFloat", inputs, [scale.output[0]], name=node.name, domain=MS_DOMAIN
        )
        gone |= {id(cast), id(scale)}
        if len(consumers[product.output[0]]) == 1:
            gone.add(id(product))
    nodes = [fused.get(id(n), n) for n in model.graph.node if id(n) not in gone]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if fused and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(fused)
