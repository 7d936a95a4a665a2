"""ONNX graph files of any size: one file below a limit, weights in a file beside it above.

A protobuf message cannot exceed 2 GiB, and decoders pass that early: Qwen3-Embedding-0.6B holds
2.4 GB of fp32 weights. Above `INLINE_LIMIT_BYTES` a graph keeps its weights in ONNX's external
data, one file named after it (`decoder.fast.fp32.onnx.data`), which ONNX Runtime reads from
beside the graph and the manifest hashes like any other file. Smaller graphs (BERT's) stay one
self-contained file, exactly as before.
"""

from __future__ import annotations

from pathlib import Path

import onnx

INLINE_LIMIT_BYTES = 1_500_000_000  # under protobuf's 2 GiB, with room for the graph itself


def data_file(path: Path) -> Path:
    """Where a graph's external weights live: beside it, named after it."""
    return path.with_name(path.name + ".data")


def is_large(weight_bytes: int) -> bool:
    return weight_bytes > INLINE_LIMIT_BYTES


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(init.raw_data) for init in model.graph.initializer)


def save_graph(model: onnx.ModelProto, path: Path) -> None:
    """Save (weights inline or beside it, by size) and check the saved file."""
    data_file(path).unlink(missing_ok=True)  # ONNX appends to an existing data file
    if is_large(weight_bytes(model)):
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_file(path).name,
        )
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))  # by path: checks graphs of any size


def remove_graph(path: Path) -> None:
    path.unlink(missing_ok=True)
    data_file(path).unlink(missing_ok=True)
