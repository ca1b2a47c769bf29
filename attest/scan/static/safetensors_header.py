"""Strict safetensors header validation, reading the header only (never the tensors).

safetensors' own loader accepts a header that names the same tensor twice (the last entry wins) and
``__metadata__`` carrying arbitrary text, so this parser checks duplicates itself with an
``object_pairs_hook`` and bounds the metadata. Everything the loader checks is checked again here so a
file is judged before anyone loads it: dtype whitelist, shape x itemsize = byte span, offsets in
bounds, no overlap, no gap, no trailing bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import IO, Any

# dtype -> bytes per element (sub-byte float formats are not accepted: they cannot be spanned exactly).
DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
    "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "C64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_ENTRIES = 256
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


class HeaderError(ValueError):
    """The header violates the format; ``rule`` names which check failed (the finding's rule id)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass
class TensorInfo:
    """A tensor as the header declares it."""

    name: str
    dtype: str
    shape: list[int]
    begin: int
    end: int


@dataclass
class SafetensorsHeader:
    """A header that passed every structural check."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    header_length: int = 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise HeaderError("safetensors.duplicate-name", f"key {key!r} appears twice in the header")
        out[key] = value
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_header(handle: IO[bytes], file_size: int) -> SafetensorsHeader:
    """Parse and validate the header of an open safetensors file of ``file_size`` bytes."""
    prefix = handle.read(8)
    if len(prefix) != 8:
        raise HeaderError("safetensors.truncated", "file shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise HeaderError("safetensors.header-too-large", f"header length {length} exceeds 100 MiB")
    if length > file_size - 8:
        raise HeaderError("safetensors.truncated", f"header length {length} runs past end of file")
    raw = handle.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError("safetensors.header-not-utf8", f"header is not UTF-8: {exc}") from None
    if not text.startswith("{"):
        raise HeaderError("safetensors.header-not-object", "header does not start with '{'")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except HeaderError:
        raise
    except ValueError as exc:
        raise HeaderError("safetensors.header-not-json", f"header is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HeaderError("safetensors.header-not-object", "header is not a JSON object")
    metadata = _check_metadata(doc.pop("__metadata__", None))
    tensors = {name: _check_entry(name, entry) for name, entry in doc.items()}
    _check_layout(tensors, file_size - 8 - length)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_length=length)


def _check_metadata(meta: object) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise HeaderError("safetensors.metadata-invalid", "__metadata__ must map strings to strings")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if len(meta) > MAX_METADATA_ENTRIES or size > MAX_METADATA_BYTES:
        raise HeaderError(
            "safetensors.metadata-too-large",
            f"__metadata__ has {len(meta)} entries, {size} bytes (limits {MAX_METADATA_ENTRIES}, "
            f"{MAX_METADATA_BYTES})",
        )
    return dict(meta)


def _check_entry(name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise HeaderError(
            "safetensors.entry-invalid", f"tensor {name!r}: entry must have exactly {sorted(_ENTRY_KEYS)}"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise HeaderError("safetensors.dtype-not-allowed", f"tensor {name!r}: dtype {dtype!r} not allowed")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise HeaderError("safetensors.shape-invalid", f"tensor {name!r}: shape {shape!r} invalid")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise HeaderError("safetensors.offsets-invalid", f"tensor {name!r}: data_offsets {offsets!r} invalid")
    span = offsets[1] - offsets[0]
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if span != expected:
        raise HeaderError(
            "safetensors.span-mismatch",
            f"tensor {name!r}: shape {shape} x {dtype} needs {expected} bytes, offsets span {span}",
        )
    return TensorInfo(name=name, dtype=dtype, shape=list(shape), begin=offsets[0], end=offsets[1])


def _check_layout(tensors: dict[str, TensorInfo], data_size: int) -> None:
    cursor = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.end > data_size:
            raise HeaderError(
                "safetensors.out-of-bounds",
                f"tensor {info.name!r} ends at {info.end}, data section has {data_size} bytes",
            )
        if info.begin < cursor:
            raise HeaderError("safetensors.overlap", f"tensor {info.name!r} overlaps the previous tensor")
        if info.begin > cursor:
            raise HeaderError("safetensors.gap", f"{info.begin - cursor} unused bytes before {info.name!r}")
        cursor = info.end
    if cursor != data_size:
        raise HeaderError("safetensors.trailing-bytes", f"{data_size - cursor} bytes after the last tensor")
