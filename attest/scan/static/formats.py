"""File format detection by magic bytes, never by extension (a zip renamed ``.safetensors`` is a zip)."""

from __future__ import annotations

import struct

ZIP = "zip"
PICKLE = "pickle"
LEGACY_TORCH = "legacy-torch"
SAFETENSORS = "safetensors"
NPY = "npy"
GZIP = "gzip"
TAR = "tar"
GGUF = "gguf"
TEXT = "text"
UNKNOWN = "unknown"

# The LONG1-encoded magic number ``0x1950a86a20f9469cfc6c`` that opens a legacy (non-zip) torch file.
_LEGACY_TORCH_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# Extensions under which a consumer would unpickle the file: unknown bytes there are suspicious.
PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".model")
WEIGHT_EXTENSIONS = (*PICKLE_EXTENSIONS, ".safetensors", ".npy", ".npz", ".gguf", ".h5", ".onnx", ".msgpack")


def detect(head: bytes, size: int) -> str:
    """Classify a file from its first bytes (at least 512 when available) and its size."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    if head.startswith(b"\x93NUMPY"):
        return NPY
    if head.startswith(b"GGUF"):
        return GGUF
    if head.startswith(b"\x80") and len(head) >= 2 and 2 <= head[1] <= 5:
        return LEGACY_TORCH if head[2:14] == _LEGACY_TORCH_MAGIC else PICKLE
    if _looks_like_safetensors(head, size):
        return SAFETENSORS
    if _is_text(head):
        return TEXT
    return UNKNOWN


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return b"\x00" not in head
