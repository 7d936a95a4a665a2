"""numpy <-> the wire `Tensor`: packed little-endian bytes with dtype and shape.

Shared by the server and the client. Decoding is a zero-copy view over the message's bytes.
"""

from __future__ import annotations

import numpy as np

from attnserve.v1 import embedder_pb2 as pb

WIRE_DTYPES: dict[int, np.dtype[np.generic]] = {
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_FLOAT16: np.dtype("<f2"),
}


def encode(array: np.ndarray, dtype: int = pb.DTYPE_FLOAT32) -> pb.Tensor:
    wire = WIRE_DTYPES[dtype]
    data = np.ascontiguousarray(array, dtype=wire).tobytes()
    return pb.Tensor(dtype=dtype, shape=list(array.shape), data=data)  # type: ignore[arg-type]


def decode(tensor: pb.Tensor) -> np.ndarray:
    """A read-only view over the message bytes (no copy); float16 stays float16."""
    wire = WIRE_DTYPES.get(tensor.dtype)
    if wire is None:
        raise ValueError(f"unsupported tensor dtype {tensor.dtype}")
    shape = tuple(tensor.shape)
    expected = int(np.prod(shape, dtype=np.int64)) * wire.itemsize
    if len(tensor.data) != expected:
        raise ValueError(f"tensor has {len(tensor.data)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(tensor.data, dtype=wire).reshape(shape)
