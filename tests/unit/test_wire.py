"""The wire codec: numpy <-> packed little-endian `Tensor`, round trips and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb


@pytest.mark.parametrize("shape", [(3, 4), (1, 384), (2, 5, 5), (0, 8), (7,)])
def test_float32_round_trip_is_exact(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tensor = wire.encode(array)
    assert tensor.dtype == pb.DTYPE_FLOAT32
    assert tuple(tensor.shape) == shape
    assert len(tensor.data) == array.size * 4
    decoded = wire.decode(tensor)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, array)


def test_float16_keeps_half_precision_and_its_rounding() -> None:
    array = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    decoded = wire.decode(wire.encode(array, pb.DTYPE_FLOAT16))
    assert decoded.dtype == np.float16
    np.testing.assert_array_equal(decoded, array.astype(np.float16))


def test_bytes_are_little_endian_whatever_the_input_order() -> None:
    big_endian = np.array([1.0, -2.5], dtype=">f4")
    tensor = wire.encode(big_endian)
    assert tensor.data == np.array([1.0, -2.5], dtype="<f4").tobytes()


def test_decoding_is_a_read_only_view_without_a_copy() -> None:
    decoded = wire.decode(wire.encode(np.ones((2, 3), dtype=np.float32)))
    assert not decoded.flags.writeable
    assert not decoded.flags.owndata


def test_a_wrong_byte_count_is_refused() -> None:
    tensor = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[2, 3], data=b"\x00" * 20)
    with pytest.raises(ValueError, match="20 bytes"):
        wire.decode(tensor)


def test_an_unknown_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported tensor dtype"):
        wire.decode(pb.Tensor(dtype=pb.DTYPE_UNSPECIFIED, shape=[1], data=b"\x00" * 4))
