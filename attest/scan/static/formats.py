"""File format detection by magic bytes, never by extension (a zip renamed ``.safetensors`` is a zip).

Formats without magic are named by what they must parse as: protocol 0/1 pickles (tried on every file
without magic, see ``containers``), protobuf files (``.onnx``, ``*.pb``, SentencePiece ``.model``)
and msgpack (``.msgpack``), which are then parsed by their own bounded walkers.

**Benign data kinds** (reported as nothing): UTF-8 text that is not a pickle (README, LICENSE,
``.gitattributes``, JSON/YAML configs, tokenizer vocabularies and merges: their code-bearing parts,
``auto_map``, chat templates, Hydra ``_target_``, are checked separately), images (PNG, JPEG, GIF,
WebP) and audio samples (WAV, FLAC, OGG, MP3). Any other binary the scanner cannot parse is
``format.unanalysed``: never a silent PASSED.
"""

from __future__ import annotations

import struct
import zlib

ZIP = "zip"
PICKLE = "pickle"
LEGACY_TORCH = "legacy-torch"
SAFETENSORS = "safetensors"
NPY = "npy"
GZIP = "gzip"
BZIP2 = "bzip2"
XZ = "xz"
LZMA = "lzma"
LZ4 = "lz4"
ZSTD = "zstd"
ZLIB = "zlib"
SEVENZIP = "7z"
TAR = "tar"
GGUF = "gguf"
HDF5 = "hdf5"
TFLITE = "tflite"
NATIVE = "native-code"
IMAGE = "image"
AUDIO = "audio"
TEXT = "text"
UNKNOWN = "unknown"
# Recognised by the parse their name implies (no magic): set by ``containers``, never by ``detect``.
ONNX = "onnx"
TF_GRAPH = "tensorflow-graph"
TF_VARIABLES = "tensorflow-variables"
MSGPACK = "msgpack"
YAML = "yaml"
SENTENCEPIECE = "sentencepiece"

COMPRESSED = (GZIP, BZIP2, XZ, LZMA, LZ4, ZSTD, ZLIB)
BENIGN_DATA = (IMAGE, AUDIO)

# The LONG1-encoded magic number ``0x1950a86a20f9469cfc6c`` that opens a legacy (non-zip) torch file.
_LEGACY_TORCH_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# Extensions under which a consumer would unpickle the file: unknown bytes there are suspicious.
PICKLE_EXTENSIONS = (
    ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".model", ".pdparams",
    ".npy", ".sav", ".mar",
)  # fmt: skip
WEIGHT_EXTENSIONS = (
    *PICKLE_EXTENSIONS, ".safetensors", ".npz", ".gguf", ".h5", ".hdf5", ".keras", ".onnx", ".msgpack",
    ".tflite", ".pb", ".nemo",
)  # fmt: skip

_SIMPLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", ZIP),
    (b"PK\x05\x06", ZIP),
    (b"\x1f\x8b", GZIP),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x04\x22\x4d\x18", LZ4),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"7z\xbc\xaf\x27\x1c", SEVENZIP),
    (b"\x93NUMPY", NPY),
    (b"GGUF", GGUF),
    (b"\x89HDF\r\n\x1a\n", HDF5),
    (b"\x89PNG\r\n\x1a\n", IMAGE),
    (b"\xff\xd8\xff", IMAGE),
    (b"GIF87a", IMAGE),
    (b"GIF89a", IMAGE),
    (b"\x7fELF", NATIVE),
    (b"\xfe\xed\xfa\xce", NATIVE),
    (b"\xfe\xed\xfa\xcf", NATIVE),
    (b"\xce\xfa\xed\xfe", NATIVE),
    (b"\xcf\xfa\xed\xfe", NATIVE),
    (b"fLaC", AUDIO),
    (b"OggS", AUDIO),
    (b"ID3", AUDIO),
)


def detect(head: bytes, size: int) -> str:
    """Classify a file from its first bytes (at least 512 when available) and its size."""
    for magic, kind in _SIMPLE_MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE"):
        return IMAGE if head[8:12] == b"WEBP" else AUDIO
    if head.startswith(b"MZ") and len(head) >= 64:
        (pe,) = struct.unpack("<I", head[60:64])
        if head[pe : pe + 4] == b"PE\0\0":
            return NATIVE
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    if head.startswith(b"BZh") and len(head) >= 10 and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return BZIP2
    if head.startswith(b"\x80") and len(head) >= 2 and 2 <= head[1] <= 5:
        return LEGACY_TORCH if head[2:14] == _LEGACY_TORCH_MAGIC else PICKLE
    if head[4:8] == b"TFL3":
        return TFLITE
    if _looks_like_safetensors(head, size):
        return SAFETENSORS
    if _looks_like_zlib(head):
        return ZLIB
    if _looks_like_lzma_alone(head):
        return LZMA
    if _is_text(head):
        return TEXT
    return UNKNOWN


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _looks_like_zlib(head: bytes) -> bool:
    """A zlib header (joblib's ``compress=('zlib', n)``) whose first bytes really inflate: the two
    header bytes alone also open ordinary text (``x^``)."""
    if len(head) < 3 or head[0] != 0x78 or (head[0] << 8 | head[1]) % 31:
        return False
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def _looks_like_lzma_alone(head: bytes) -> bool:
    """The legacy ``.lzma`` header joblib writes for ``compress='lzma'``: properties byte 0x5d, a
    power-of-two-ish dictionary size and an unknown (all ones) or plausible uncompressed size."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    (dict_size,) = struct.unpack("<I", head[1:5])
    return 4096 <= dict_size <= 1 << 30 and head[12] in (0x00, 0xFF)


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
