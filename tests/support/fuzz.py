"""Hypothesis strategies for protobuf wire fuzzing, shared by attnserve.v1's and tei.v1's fuzz
tests."""

from __future__ import annotations

from hypothesis import strategies as st

texts = st.text(st.characters(codec="utf-8"), max_size=60)  # any text a client can send


uint32 = st.integers(0, 2**32 - 1)


int32 = st.integers(-(2**31), 2**31 - 1)  # enum fields: any value, known or not


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def unknown_fields(draw: st.DrawFn) -> bytes:
    """Fields the schema does not know, of every wire type (a newer client's, or junk)."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        number = draw(st.integers(20, 2**29 - 1))
        kind = draw(st.sampled_from([0, 1, 2, 5]))
        out += varint(number << 3 | kind)
        if kind == 0:
            out += varint(draw(st.integers(0, 2**64 - 1)))
        elif kind == 1:
            out += draw(st.binary(min_size=8, max_size=8))
        elif kind == 5:
            out += draw(st.binary(min_size=4, max_size=4))
        else:
            payload = draw(st.binary(max_size=64))
            out += varint(len(payload)) + payload
    return out


def nested_groups(depth: int) -> bytes:
    """An unknown field nested `depth` groups deep (start-group ... end-group)."""
    return varint(99 << 3 | 3) * depth + varint(99 << 3 | 4) * depth


garbage = st.one_of(
    st.binary(max_size=512),
    st.sampled_from([nested_groups(50), nested_groups(5000), b"\x0a\xff\xff\xff\xff\x0f"]),
)
