"""The Open Inference Protocol's kit: its names, the one reader of a BYTES input, and a response
of raw little-endian outputs.

The model kinds (`embed.py`, `score.py`) read their inputs and write their outputs through this,
so every OIP request's strings are checked the same way: the input named, BYTES, typed contents
or raw contents (one or the other, as the protocol says), the element count the shape declares,
valid UTF-8.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import Truncation

PROTOCOL = "oip"  # the calls' `protocol` metric label
SERVICE_NAME = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
VERSION = "1"


def bytes_elements(raw: bytes) -> list[bytes]:
    """A raw BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise invalid("raw_input_contents: a BYTES element's length is cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise invalid("raw_input_contents: a BYTES element runs past the end of its data")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def bytes_input(request: oip.ModelInferRequest, name: str) -> list[str]:
    """The strings of the BYTES input `name`, from typed or raw contents."""
    position = next((i for i, t in enumerate(request.inputs) if t.name == name), None)
    if position is None:
        names = [tensor.name for tensor in request.inputs]
        raise invalid(f"no input named {name!r} (BYTES) given; got {names}")
    tensor = request.inputs[position]
    if tensor.datatype != "BYTES":
        raise invalid(f"input {name!r} must be BYTES, got {tensor.datatype or 'no datatype'}")
    shape = list(tensor.shape)
    if any(size < 0 for size in shape):
        raise invalid(f"input {name!r} has a negative size in its shape {shape}")
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise invalid("raw_input_contents must hold exactly one entry per input")
        if tensor.contents.ByteSize():  # the protocol allows one or the other, not both
            raise invalid(f"input {name!r} has both contents and raw_input_contents")
        elements = bytes_elements(request.raw_input_contents[position])
    else:
        elements = list(tensor.contents.bytes_contents)
    if len(elements) != int(np.prod(shape, dtype=np.int64)):
        raise invalid(f"input {name!r} has shape {shape} but {len(elements)} elements")
    try:
        return [element.decode("utf-8") for element in elements]
    except UnicodeDecodeError:
        raise invalid(f"input {name!r}: an element is not valid UTF-8") from None


def infer_response(
    request: oip.ModelInferRequest,
    model: str,
    outputs: Sequence[tuple[str, str, np.ndarray]],
) -> oip.ModelInferResponse:
    """(name, datatype, values) per output, in order, as raw little-endian contents (BOOL: one
    byte per element, as Triton sends it)."""
    tensor = oip.ModelInferResponse.InferOutputTensor
    return oip.ModelInferResponse(
        model_name=model,
        model_version=VERSION,
        id=request.id,
        outputs=[tensor(name=n, datatype=d, shape=list(v.shape)) for n, d, v in outputs],
        raw_output_contents=[values.tobytes() for _, _, values in outputs],
    )


INPUT = "text"  # the texts of a model that answers per text (the embed and sparse kinds)
TRUNCATIONS = {"end": Truncation.END, "start": Truncation.START, "none": Truncation.NONE}


def texts_of(request: oip.ModelInferRequest) -> list[str]:
    """The `text` input's strings: the one input, of shape [N] or [N, 1]."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
        names = [tensor.name for tensor in request.inputs]
        raise invalid(f"expected one input named {INPUT!r} (BYTES), got {names}")
    shape = list(request.inputs[0].shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise invalid(f"input {INPUT!r} must have shape [N] or [N, 1], got {shape}")
    return bytes_input(request, INPUT)


def truncation_parameter(value: oip.InferParameter) -> Truncation:
    """The `truncate` parameter: a bool (cut at the end, or refuse), or end / start / none."""
    kind = value.WhichOneof("parameter_choice")
    if kind == "bool_param":
        return Truncation.END if value.bool_param else Truncation.NONE
    if kind == "string_param" and value.string_param in TRUNCATIONS:
        return TRUNCATIONS[value.string_param]
    raise invalid("parameter 'truncate' must be a bool or one of end, start, none")
