"""GGUF (llama.cpp) header, metadata and tensor-info validation, by hand and with every length bounded.

GGUF holds no code, but its metadata carries ``tokenizer.chat_template``, a Jinja template every
llama.cpp-based chat client renders (published sandbox escapes ran shell commands through it), and its
tensor table drives raw reads: counts, string lengths, dimensions and offsets are all checked against
the file before anything trusts them. The template goes through the same analysis as
``tokenizer_config.json`` templates (:func:`attest.scan.static.config_checks.template_findings`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from attest.scan.findings import Finding

# ggml type id -> (elements per block, bytes per block), as gguf-py's GGML_QUANT_SIZES.
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip
# metadata value type -> struct format of a scalar (8 string, 9 array are handled apart).
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
MAX_KV = 1_000_000
MAX_TENSORS = 10_000_000
MAX_STRING = 64 * 1024 * 1024
MAX_DIMS = 4  # GGML_MAX_DIMS
TEMPLATE_KEY = "tokenizer.chat_template"


class GGUFError(ValueError):
    """The file violates the GGUF layout."""


@dataclass
class GGUFInfo:
    """What the scanner keeps from a valid header: version, counts and the chat templates."""

    version: int = 0
    tensors: int = 0
    metadata: int = 0
    templates: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0
        self.v1 = False

    def take(self, n: int) -> memoryview:
        if n < 0 or n > len(self.buf) - self.pos:
            raise GGUFError(f"read of {n} bytes at offset {self.pos} runs past the end of the file")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def count(self) -> int:
        return int(self.scalar("<I" if self.v1 else "<Q"))

    def string(self) -> str:
        length = self.count()
        if length > MAX_STRING:
            raise GGUFError(f"string of {length} bytes at offset {self.pos} exceeds {MAX_STRING}")
        raw = self.take(length)
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"string at offset {self.pos - length} is not UTF-8") from None


def parse_gguf(data: bytes | memoryview) -> GGUFInfo:
    """Validate a GGUF file held in ``data`` (a memory map for real files); raise :class:`GGUFError`."""
    r = _Reader(memoryview(data))
    if bytes(r.take(4)) != b"GGUF":
        raise GGUFError("missing GGUF magic")
    info = GGUFInfo(version=int(r.scalar("<I")))
    if info.version not in (1, 2, 3):
        raise GGUFError(f"unsupported GGUF version {info.version}")
    r.v1 = info.version == 1
    info.tensors, info.metadata = r.count(), r.count()
    if info.metadata > MAX_KV or info.tensors > MAX_TENSORS:
        raise GGUFError(f"{info.metadata} metadata entries / {info.tensors} tensors exceed the bounds")
    alignment = 32
    seen: set[str] = set()
    for _ in range(info.metadata):
        key = _unique(r.string(), seen, "metadata key")
        value_type = int(r.scalar("<I"))
        value = _value(r, value_type, 0)
        if key == "general.alignment":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value & (value - 1):
                raise GGUFError(f"general.alignment {value!r} is not a power of two")
            alignment = value
        if key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + "."):
            if not isinstance(value, str):
                raise GGUFError(f"{key} is not a string")
            info.templates[key] = value
    _tensor_infos(r, info.tensors, alignment)
    return info


def _unique(name: str, seen: set[str], what: str) -> str:
    """``name``, recorded in ``seen``; a second occurrence is malformed (a loader keeps only one)."""
    if name in seen:
        raise GGUFError(f"{what} {name!r} appears twice")
    seen.add(name)
    return name


def _value(r: _Reader, value_type: int, depth: int) -> object:
    if value_type in _SCALARS:
        return r.scalar(_SCALARS[value_type])
    if value_type == _STRING:
        return r.string()
    if value_type == _ARRAY:
        if depth > 4:
            raise GGUFError("arrays nested more than 4 deep")
        item_type = int(r.scalar("<I"))
        count = r.count()
        if count > len(r.buf) - r.pos:  # every item takes at least one byte
            raise GGUFError(f"array of {count} items cannot fit in the rest of the file")
        if item_type in _SCALARS:
            r.take(count * struct.calcsize(_SCALARS[item_type]))
            return None
        for _ in range(count):
            _value(r, item_type, depth + 1)
        return None
    raise GGUFError(f"unknown metadata value type {value_type} at offset {r.pos}")


def _tensor_infos(r: _Reader, count: int, alignment: int) -> None:
    spans: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for _ in range(count):
        name = _unique(r.string(), names, "tensor")
        n_dims = int(r.scalar("<I"))
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions (1..{MAX_DIMS})")
        dims = [r.count() for _ in range(n_dims)]
        ggml_type = int(r.scalar("<I"))
        offset = int(r.scalar("<Q"))
        if ggml_type not in GGML_TYPES:
            raise GGUFError(f"tensor {name!r} has unknown ggml type {ggml_type}")
        block, block_bytes = GGML_TYPES[ggml_type]
        if dims[0] % block:
            raise GGUFError(f"tensor {name!r}: first dimension {dims[0]} is not a multiple of {block}")
        if offset % alignment:
            raise GGUFError(f"tensor {name!r}: offset {offset} is not aligned to {alignment}")
        spans.append((offset, offset + math.prod(dims) // block * block_bytes, name))
    data_start = -(-r.pos // alignment) * alignment
    data_size = len(r.buf) - data_start
    cursor = 0
    for begin, end, name in sorted(spans):
        if end > data_size:
            raise GGUFError(f"tensor {name!r} ends at {end}, the data section has {data_size} bytes")
        if begin < cursor:
            raise GGUFError(f"tensor {name!r} overlaps the previous tensor")
        cursor = end


def scan_gguf(data: bytes | memoryview, rel: str) -> tuple[list[Finding], GGUFInfo | None]:
    """Findings for one GGUF file (``gguf.malformed`` when the layout is violated) and its info."""
    try:
        return [], parse_gguf(data)
    except GGUFError as exc:
        return [Finding("gguf.malformed", "high", rel, str(exc)[:300])], None
    except struct.error as exc:
        return [Finding("gguf.malformed", "high", rel, f"unreadable field: {exc}"[:300])], None
