"""A bounded protobuf wire-format walker: enough to read ONNX, TensorFlow and SentencePiece files
without onnx, tensorflow or the protobuf runtime (fast, and nothing is ever instantiated).

Fields are yielded lazily as ``(number, wire_type, value)``: an ``int`` for varints, ``bytes`` for
fixed 32/64-bit values and a ``memoryview`` slice for length-delimited ones (sub-messages, strings,
packed arrays), so a walker decodes only the fields it needs. Any wire-format violation (truncated
varint, length past the end, groups, unknown wire type) raises :class:`ProtobufError`.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_FIELD_NUMBER = (1 << 29) - 1


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes | memoryview]]:
    """Yield every top-level field of one message."""
    buf = memoryview(data)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise ProtobufError(f"invalid field number {number}")
        if wire == VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == LEN:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise ProtobufError(f"field {number}: length {length} runs past the end")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > end:
                raise ProtobufError(f"field {number}: truncated fixed-width value")
            yield number, wire, bytes(buf[pos : pos + width])
            pos += width
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire}")


def messages(data: bytes | memoryview, number: int) -> Iterator[memoryview]:
    """The length-delimited values of field ``number`` (sub-messages or strings)."""
    for num, wire, value in fields(data):
        if num == number:
            if wire != LEN or not isinstance(value, memoryview):
                raise ProtobufError(f"field {number} is not length-delimited")
            yield value


def text(value: memoryview, limit: int = 4096) -> str:
    """A string field, decoded as UTF-8 (replacement characters for invalid bytes) and capped."""
    return bytes(value[:limit]).decode("utf-8", "replace")


def first_text(data: bytes | memoryview, number: int) -> str:
    """The last value of string field ``number`` (protobuf's "last one wins"), or ``""``."""
    out = ""
    for value in messages(data, number):
        out = text(value)
    return out


def validate(data: bytes | memoryview) -> int:
    """Check that ``data`` is a well-formed message; return its number of top-level fields."""
    return sum(1 for _ in fields(data))
