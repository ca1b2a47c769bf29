"""Flax ``.msgpack`` checkpoints: a bounded structural walk of the msgpack encoding.

``flax.serialization.msgpack_restore`` builds only dicts, lists, scalars and arrays (ext type 1:
ndarray, 2: native complex, 3: numpy scalar), so the risk is a malformed or hostile structure (lengths
past the end, absurd nesting), not code. Any other ext type is a finding: no Flax writer emits it.
"""

from __future__ import annotations

import struct

from attest.scan.findings import Finding

FLAX_EXT_TYPES = frozenset({1, 2, 3})
MAX_DEPTH = 256


class MsgpackError(ValueError):
    """The bytes are not one well-formed msgpack object."""


# first byte -> (bytes of the length field, kind) for the variable-length families.
_SIZED = {
    0xC4: (1, "raw"), 0xC5: (2, "raw"), 0xC6: (4, "raw"),
    0xD9: (1, "raw"), 0xDA: (2, "raw"), 0xDB: (4, "raw"),
    0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map"),
    0xC7: (1, "ext"), 0xC8: (2, "ext"), 0xC9: (4, "ext"),
}  # fmt: skip
_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


def walk(data: bytes | memoryview) -> set[int]:
    """Validate one msgpack object spanning all of ``data``; return the ext type codes used."""
    buf = memoryview(data)
    end = len(buf)
    exts: set[int] = set()
    pos = 0
    pending = 1  # objects still to read; containers add their children
    depth_marks: list[int] = []  # pending count at which each open container closes
    while pending:
        if pos >= end:
            raise MsgpackError("truncated data")
        byte = buf[pos]
        pos += 1
        pending -= 1
        children = 0
        if byte <= 0x7F or byte >= 0xE0 or byte in (0xC0, 0xC2, 0xC3):
            pass
        elif 0x80 <= byte <= 0x8F:
            children = 2 * (byte & 0x0F)
        elif 0x90 <= byte <= 0x9F:
            children = byte & 0x0F
        elif 0xA0 <= byte <= 0xBF:
            pos += byte & 0x1F
        elif byte in _FIXED:
            pos += _FIXED[byte]
        elif byte in _FIXEXT:
            exts.add(_ext_code(buf, pos, end))
            pos += 1 + _FIXEXT[byte]
        elif byte in _SIZED:
            width, kind = _SIZED[byte]
            if pos + width > end:
                raise MsgpackError("truncated length")
            length = int.from_bytes(buf[pos : pos + width], "big")
            pos += width
            if kind == "raw":
                pos += length
            elif kind == "ext":
                exts.add(_ext_code(buf, pos, end))
                pos += 1 + length
            else:
                children = length * (2 if kind == "map" else 1)
                if children > end - pos:
                    raise MsgpackError(f"container of {length} items cannot fit in the data")
        else:
            raise MsgpackError(f"invalid type byte 0x{byte:02x} at offset {pos - 1}")
        if pos > end:
            raise MsgpackError("value runs past the end")
        if children:
            depth_marks.append(pending)  # this container closes when pending falls back to here
            pending += children
            if len(depth_marks) > MAX_DEPTH:
                raise MsgpackError(f"nested more than {MAX_DEPTH} deep")
        else:
            while depth_marks and depth_marks[-1] == pending:
                depth_marks.pop()
    if pos != end:
        raise MsgpackError(f"{end - pos} bytes after the object")
    return exts


def _ext_code(buf: memoryview, pos: int, end: int) -> int:
    if pos >= end:
        raise MsgpackError("truncated ext type")
    code: int = struct.unpack_from("b", buf, pos)[0]
    return code


def scan_msgpack(data: bytes | memoryview, rel: str) -> list[Finding]:
    """Findings for a Flax msgpack checkpoint."""
    try:
        exts = walk(data)
    except MsgpackError as exc:
        return [Finding("msgpack.malformed", "high", rel, f"not a valid msgpack checkpoint: {exc}"[:300])]
    unknown = sorted(exts - FLAX_EXT_TYPES)
    if unknown:
        return [
            Finding(
                "msgpack.unknown-ext-type",
                "medium",
                rel,
                f"ext types {unknown} are not Flax's (1 ndarray, 2 complex, 3 numpy scalar)",
            )
        ]
    return []
