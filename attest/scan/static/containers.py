"""Dispatch one file (or archive member) to the right checker by its magic bytes, recursing into
compressed streams and archives with depth, size and ratio bounds.

Every pickle in a file is analysed: each ``.pkl`` member of a zip-format torch file, all five pickles
of a legacy torch file (scanners that stop after the first miss a payload in the fourth), the pickled
payload of an object-dtype ``.npy``, joblib files (compressed or not), protocol 0/1 pickles (which have
no magic: every file without one gets a bounded pickle-prefix parse), streams hidden after a valid
pickle behind garbage, and pickles inside nested archives (zip, tar, 7z; gzip, bz2, xz/lzma, lz4,
zstd, zlib). Formats with their own rules (GGUF, Keras, HDF5, ONNX, TensorFlow, TFLite, Flax msgpack,
Hydra YAML) go to their modules. Anything else that is not a benign data kind is
``format.unanalysed``: never a silent PASSED.
"""

from __future__ import annotations

import ast
import bz2
import contextlib
import gzip
import io
import lzma
import mmap
import posixpath
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from attest.scan.findings import Finding, unanalysed
from attest.scan.static import formats, graphs, hydra, keras
from attest.scan.static.config_checks import template_findings
from attest.scan.static.gguf import scan_gguf
from attest.scan.static.msgpack import scan_msgpack
from attest.scan.static.pickle_scan import (
    PickleReport,
    analyse_pickle,
    analyse_pickle_sequence,
    hidden_pickles,
    is_dangerous,
)
from attest.scan.static.safetensors_header import HeaderError, SafetensorsHeader, read_header

MAX_DEPTH = 4
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 100_000
# Decompression-bomb bounds: beyond BOMB_FLOOR bytes of output, more than BOMB_RATIO bytes out per
# byte in is refused (model weights compress about 1.1:1; a bomb 1000:1).
BOMB_RATIO = 100
BOMB_FLOOR = 16 * 1024 * 1024
_HEAD = 512
_PEEK = 64 * 1024
_NPY_MAX_HEADER = 1_000_000
_CHUNK = 1024 * 1024
_RAW_TORCH_MEMBER = re.compile(
    r"(^|/)(data/\d+|version|byteorder|\.data/serialization_id|\.format_version|\.storage_alignment)$"
)
_LEGACY_TORCH_PICKLES = 5  # magic number, protocol version, sys info, the object, storage keys
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma", ".lz4", ".zst", ".z", ".zlib")
_YAML = (".yaml", ".yml")
_PROTOBUF_TF = (".pb",)


@dataclass
class FileScan:
    """Findings for one top-level file plus what later checks need (the safetensors header)."""

    findings: list[Finding] = field(default_factory=list)
    format: str = formats.UNKNOWN
    safetensors: SafetensorsHeader | None = None
    pickles: int = 0
    references: set[str] = field(default_factory=set)  # model-relative files this one loads as data


def scan_path(path: Path, rel: str) -> FileScan:
    """Scan one regular file of the model folder."""
    result = FileScan()
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        handle.seek(0)
        _dispatch(handle, size, head, rel, 0, result, path)
    return result


def _name(rel: str) -> str:
    """The lower-case base name of a file or of the innermost archive member."""
    return posixpath.basename(rel.rsplit("!", 1)[-1]).lower()


def _dispatch(
    handle: IO[bytes], size: int, head: bytes, rel: str, depth: int, result: FileScan, path: Path | None
) -> None:
    kind = formats.detect(head, size)
    if depth == 0:
        result.format = kind
    name = _name(rel)
    if name.endswith(".safetensors"):
        if kind in (formats.SAFETENSORS, formats.UNKNOWN, formats.TEXT):
            _scan_safetensors(handle, size, rel, depth, result)
            return
        result.findings.append(
            Finding("format.extension-mismatch", "high", rel, f"named .safetensors but the content is {kind}")
        )
    if kind == formats.SAFETENSORS:
        _scan_safetensors(handle, size, rel, depth, result)
    elif kind == formats.ZIP:
        _scan_zip(handle, rel, depth, result)
    elif kind == formats.LEGACY_TORCH:
        _record(
            analyse_pickle_sequence(handle, size, expected=_LEGACY_TORCH_PICKLES),
            rel,
            result,
            _LEGACY_TORCH_PICKLES,
        )
    elif kind == formats.PICKLE:
        _scan_pickle(handle, size, rel, result)
    elif kind == formats.NPY:
        _scan_npy(handle, size, rel, result)
    elif kind in formats.COMPRESSED:
        _scan_compressed(kind, handle, size, rel, depth, result)
    elif kind == formats.TAR:
        _scan_tar(handle, rel, depth, result)
    elif kind == formats.SEVENZIP:
        _scan_7z(handle, size, rel, depth, result)
    elif kind == formats.GGUF:
        with _mapped(handle, size) as data:
            findings, info = scan_gguf(data, rel)
        result.findings += findings
        for key, template in sorted(info.templates.items()) if info else []:
            result.findings += template_findings(rel, template, f"GGUF {key}")
    elif kind == formats.HDF5:
        result.findings += keras.scan_hdf5(
            None if path else _read_all(handle), str(path) if path else None, rel
        )
    elif kind == formats.TFLITE:
        with _mapped(handle, size) as data:
            result.findings += graphs.scan_tflite(data, rel)
    elif kind == formats.NATIVE:
        result.findings.append(
            Finding(
                "code.native-binary",
                "medium",
                rel,
                "native executable or shared library (ELF, Mach-O or PE): custom ops and loaders run it",
            )
        )
    elif kind in formats.BENIGN_DATA:
        return
    else:
        _scan_unmarked(handle, size, kind, rel, depth, result)


def _scan_unmarked(handle: IO[bytes], size: int, kind: str, rel: str, depth: int, result: FileScan) -> None:
    """Text or binary without magic: a protocol 0/1 pickle, a format known by its name (protobuf,
    msgpack, YAML), a benign text file, or ``format.unanalysed``."""
    name = _name(rel)
    probe = analyse_pickle(handle, 0)
    if probe.error is None or probe.called:
        if depth == 0:
            result.format = formats.PICKLE
        _scan_pickle(handle, size, rel, result)
        return
    found = kind
    if name.endswith(".onnx"):
        found = formats.ONNX
        with _mapped(handle, size) as data:
            findings, references = graphs.scan_onnx(data, rel, posixpath.dirname(rel.rsplit("!", 1)[-1]))
        result.findings += findings
        if depth == 0:
            result.references |= references
    elif name.endswith(_PROTOBUF_TF):
        found = formats.TF_GRAPH
        with _mapped(handle, size) as data:
            result.findings += graphs.scan_tensorflow(data, rel)
    elif name.endswith(".msgpack"):
        found = formats.MSGPACK
        with _mapped(handle, size) as data:
            result.findings += scan_msgpack(data, rel)
    elif kind == formats.TEXT:
        if name.endswith(_YAML):
            found = formats.YAML
            result.findings += hydra.scan_yaml(_read_all(handle), rel)
    elif name.endswith(".model") and _is_sentencepiece(handle, size):
        found = formats.SENTENCEPIECE
    elif _is_tf_variables(rel):
        found = formats.TF_VARIABLES
    else:
        result.findings.append(
            unanalysed(
                rel, "binary content of no format the scanner can analyse (not a pickle, no known magic)"
            )
        )
    if depth == 0:
        result.format = found


def _is_sentencepiece(handle: IO[bytes], size: int) -> bool:
    with _mapped(handle, size) as data:
        return graphs.is_sentencepiece(data)


def _is_tf_variables(rel: str) -> bool:
    """The tensor bundle of a TensorFlow checkpoint (raw tensors, read by shape and dtype only)."""
    inner = rel.rsplit("!", 1)[-1]
    return bool(re.search(r"(^|/)variables/variables\.(index|data-\d{5}-of-\d{5})$", inner))


@contextlib.contextmanager
def _mapped(handle: IO[bytes], size: int) -> Iterator[bytes | memoryview]:
    """The whole content, memory-mapped for files on disk (multi-GB GGUF files are read lazily)."""
    handle.seek(0)
    if size == 0:
        yield b""
        return
    try:
        fileno = handle.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield _read_all(handle)
        return
    mapped = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    try:
        yield view
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a slice still alive: the map closes when it dies
            mapped.close()


def _read_all(handle: IO[bytes]) -> bytes:
    handle.seek(0)
    return handle.read()


def _scan_safetensors(handle: IO[bytes], size: int, rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        header = read_header(handle, size)
    except HeaderError as exc:
        result.findings.append(Finding(exc.rule, "high", rel, str(exc)))
        return
    if depth == 0:
        result.safetensors = header


def _scan_pickle(handle: IO[bytes], size: int, rel: str, result: FileScan) -> None:
    """A standalone pickle file: its streams, then whatever follows them (hidden streams)."""
    reports = analyse_pickle_sequence(handle, size)
    if not reports:
        return
    _record(reports, rel, result, 1)
    first, last = reports[0], reports[-1]
    if first.error is not None:
        tail = max(first.end, 1)  # search what follows the malformed part too
    else:
        tail = last.start if last.error is not None else last.end
    if tail >= size:
        return
    hidden = hidden_pickles(handle, tail, size)
    for report in hidden:
        _report_globals(report, f"pickle hidden at byte {report.start}", rel, result)
    if not hidden and first.error is None:
        result.findings.append(
            Finding("pickle.trailing-data", "low", rel, f"{size - tail} bytes after the last pickle stream")
        )


def _record(reports: list[PickleReport], rel: str, result: FileScan, required: int) -> None:
    """Turn pickle reports into findings. The first ``required`` streams must parse; a later stream
    that fails is data following the pickles (searched separately for hidden streams). Globals seen
    before a parse error are reported too: a truncated stream still imports them when loaded."""
    for index, report in enumerate(reports):
        if report.error is not None and index >= required:
            break
        if report.error is not None:
            result.findings.append(
                Finding("pickle.malformed", "high", rel, f"pickle #{index}: {report.error}")
            )
        result.pickles += 1
        _report_globals(report, f"pickle #{index}", rel, result)
        if report.error is not None:
            break
    if len(reports) < required and not any(r.error for r in reports):
        result.findings.append(
            Finding("pickle.malformed", "high", rel, f"expected {required} pickles, found {len(reports)}")
        )


def _report_globals(report: PickleReport, label: str, rel: str, result: FileScan) -> None:
    for module, name in report.disallowed:
        dangerous = is_dangerous(module, name)
        result.findings.append(
            Finding(
                "pickle.global-dangerous" if dangerous else "pickle.global-not-allowed",
                "critical" if dangerous else "high",
                rel,
                f"{label} imports {module}.{name}",
                {"module": module, "name": name},
            )
        )
    if report.unresolved_globals:
        result.findings.append(
            Finding(
                "pickle.global-unresolved",
                "high",
                rel,
                f"{label}: {report.unresolved_globals} STACK_GLOBAL with non-constant operands",
            )
        )
    if report.extension_codes:
        result.findings.append(
            Finding(
                "pickle.extension-opcode",
                "high",
                rel,
                f"{label} imports through the copyreg extension registry",
            )
        )


def _npy_header(head: bytes) -> tuple[str, int]:
    """``(descr, data offset)`` of a ``.npy`` from its first bytes; ``ValueError`` when malformed."""
    major = head[6] if len(head) > 6 else 0
    if major == 1:
        hlen, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(head[8:12], "little"), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    if hlen > _NPY_MAX_HEADER:
        raise ValueError("header too large")
    if start + hlen > len(head):
        raise ValueError("header runs past the end of the data")
    try:
        header = ast.literal_eval(head[start : start + hlen].decode("latin-1"))
        return str(header["descr"]), start + hlen
    except Exception as exc:  # literal_eval raises many types on hostile text
        raise ValueError(str(exc) or type(exc).__name__) from None


def _scan_npy(handle: IO[bytes], size: int, rel: str, result: FileScan) -> None:
    handle.seek(0)
    try:
        descr, start = _npy_header(handle.read(min(size, _NPY_MAX_HEADER + 12)))
    except ValueError as exc:  # any malformed header is a finding, never a crash
        result.findings.append(Finding("npy.malformed", "high", rel, f"unreadable .npy header: {exc}"[:300]))
        return
    if "O" in descr:
        result.findings.append(
            Finding("npy.object-dtype", "high", rel, f"object dtype {descr!r}: loading unpickles")
        )
        _record([analyse_pickle(handle, start)], rel, result, 1)


def _plain_npy(head: bytes) -> bool:
    """A ``.npy`` whose header (within ``head``) declares a plain, non-object dtype: raw numbers
    follow, so a large array inside an archive need not be read."""
    if not head.startswith(b"\x93NUMPY"):
        return False
    try:
        descr, _ = _npy_header(head)
    except ValueError:
        return False
    return "O" not in descr


def _read_bounded(
    stream: IO[bytes], compressed: int | None, rel: str, result: FileScan, prefix: bytes = b""
) -> bytes | None:
    """Read a member or decompressed stream whole (after ``prefix``, already read), refusing more than
    512 MiB and, for compressed input of ``compressed`` bytes, output beyond the bomb ratio."""
    out = bytearray(prefix)
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > MAX_MEMBER_BYTES:
            result.findings.append(
                Finding("archive.member-too-large", "medium", rel, "content over 512 MiB not scanned")
            )
            return None
        if compressed is not None and len(out) > BOMB_FLOOR and len(out) > BOMB_RATIO * max(compressed, 1):
            result.findings.append(
                Finding(
                    "archive.decompression-bomb",
                    "high",
                    rel,
                    f"over {len(out)} bytes from {compressed} compressed (ratio limit {BOMB_RATIO}:1)",
                )
            )
            return None


def _scan_member(data: bytes, rel: str, depth: int, result: FileScan) -> None:
    if depth > MAX_DEPTH:
        result.findings.append(
            Finding("archive.too-deep", "high", rel, f"archives nested more than {MAX_DEPTH} deep")
        )
        return
    _dispatch(io.BytesIO(data), len(data), data[:_HEAD], rel, depth, result, None)


class _ZlibReader(io.RawIOBase):
    """A readable stream inflating a raw zlib stream (joblib's ``compress='zlib'``), a chunk at a time."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.inflater = source, zlib.decompressobj()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while True:
            if self.inflater.unconsumed_tail:
                out = self.inflater.decompress(self.inflater.unconsumed_tail, _CHUNK)
            elif self.inflater.eof:
                return b""
            else:
                raw = self.source.read(_CHUNK)
                if not raw:
                    raise EOFError("zlib stream ended early")
                out = self.inflater.decompress(raw, _CHUNK)
            if out:
                return out


def _decompressor(kind: str, handle: IO[bytes]) -> IO[bytes] | None:
    """A streaming reader for a compressed file, or ``None`` when its optional parser is missing."""
    if kind == formats.GZIP:
        return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
    if kind == formats.BZIP2:
        return bz2.BZ2File(handle)
    if kind in (formats.XZ, formats.LZMA):
        return lzma.LZMAFile(handle)
    if kind == formats.ZLIB:
        return _ZlibReader(handle)  # type: ignore[return-value]
    try:
        if kind == formats.LZ4:
            import lz4.frame

            return lz4.frame.LZ4FrameFile(handle)
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(handle)
    except ImportError:
        return None


def _scan_compressed(kind: str, handle: IO[bytes], size: int, rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    reader = _decompressor(kind, handle)
    if reader is None:
        result.findings.append(
            unanalysed(rel, f"{kind} stream not analysed: install the 'formats' extra to decompress it")
        )
        return
    try:
        data = _read_bounded(reader, size, rel, result)
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, lzma.LZMAError) as exc:
        result.findings.append(
            Finding("archive.malformed", "high", rel, f"unreadable {kind} stream: {exc}"[:300])
        )
        return
    if data is not None:
        base = posixpath.basename(rel.rsplit("!", 1)[-1])
        inner = base[: base.rfind(".")] if base.lower().endswith(_COMPRESSION_SUFFIXES) else base
        _scan_member(data, f"{rel}!{inner}", depth + 1, result)


def _unsafe_member_name(name: str) -> str | None:
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return "an absolute path"
    if ".." in unified.split("/"):
        return "a '..' segment"
    return None


def _path_finding(rel: str, member: str, reason: str) -> Finding:
    return Finding(
        "archive.path-traversal", "high", rel, f"member {member!r} has {reason}: extraction writes outside"
    )


def _scan_zip(handle: IO[bytes], rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                result.findings.append(
                    Finding("archive.too-many-members", "medium", rel, f"{len(infos)} members")
                )
                return
            names = {info.filename for info in infos}
            is_keras = _name(rel).endswith(".keras") or (
                "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)
            )
            for info in infos:
                member_rel = f"{rel}!{info.filename}"
                reason = _unsafe_member_name(info.filename)
                if reason:
                    result.findings.append(_path_finding(rel, info.filename, reason))
                if info.is_dir() or _RAW_TORCH_MEMBER.search(info.filename):
                    continue
                if info.flag_bits & 0x1:
                    result.findings.append(unanalysed(member_rel, "encrypted zip member not analysed"))
                    continue
                if info.file_size > BOMB_FLOOR and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
                    result.findings.append(
                        Finding(
                            "archive.decompression-bomb",
                            "high",
                            member_rel,
                            f"{info.file_size} bytes from {info.compress_size} compressed",
                        )
                    )
                    continue
                with archive.open(info) as member:
                    head = member.read(_PEEK)
                    if _plain_npy(head):  # np.savez arrays: the header says everything
                        continue
                    data = _read_bounded(member, info.compress_size, member_rel, result, head)
                if data is None:
                    continue
                if is_keras and info.filename == "config.json":
                    result.findings += keras.scan_keras_config(data, member_rel)
                else:
                    _scan_member(data, member_rel, depth + 1, result)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable zip: {exc}"[:300]))


def _scan_tar(handle: IO[bytes], rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            for count, info in enumerate(archive):
                if count >= MAX_MEMBERS:
                    result.findings.append(
                        Finding("archive.too-many-members", "medium", rel, f"over {MAX_MEMBERS} members")
                    )
                    break
                reason = _unsafe_member_name(info.name)
                if reason:
                    result.findings.append(_path_finding(rel, info.name, reason))
                if info.issym() or info.islnk():
                    target = posixpath.join(posixpath.dirname(info.name), info.linkname)
                    link_reason = _unsafe_member_name(info.linkname) or _unsafe_member_name(
                        posixpath.normpath(target)
                    )
                    if link_reason:
                        result.findings.append(
                            _path_finding(rel, f"{info.name} -> {info.linkname}", f"a link to {link_reason}")
                        )
                    continue
                if not info.isfile():
                    continue
                member = archive.extractfile(info)
                if member is None:
                    continue
                data = _read_bounded(member, None, f"{rel}!{info.name}", result)
                if data is not None:
                    _scan_member(data, f"{rel}!{info.name}", depth + 1, result)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable tar: {exc}"[:300]))


def _scan_7z(handle: IO[bytes], size: int, rel: str, depth: int, result: FileScan) -> None:
    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError:
        result.findings.append(unanalysed(rel, "7z archive not analysed: install the 'formats' extra"))
        return
    handle.seek(0)
    try:
        with py7zr.SevenZipFile(handle, "r") as archive:
            infos = [i for i in archive.list() if not i.is_directory]
            total = sum(int(i.uncompressed or 0) for i in infos)
            for info in infos:
                reason = _unsafe_member_name(info.filename)
                if reason:
                    result.findings.append(_path_finding(rel, info.filename, reason))
            if len(infos) > MAX_MEMBERS or total > MAX_MEMBER_BYTES:
                result.findings.append(
                    Finding(
                        "archive.member-too-large", "medium", rel, f"{total} bytes in {len(infos)} members"
                    )
                )
                return
            if total > BOMB_FLOOR and total > BOMB_RATIO * max(size, 1):
                result.findings.append(
                    Finding(
                        "archive.decompression-bomb", "high", rel, f"{total} bytes from {size} compressed"
                    )
                )
                return
            factory = BytesIOFactory(MAX_MEMBER_BYTES)
            archive.extract(factory=factory)
            for filename, product in sorted(factory.products.items()):
                product.seek(0)
                _scan_member(product.read(), f"{rel}!{filename}", depth + 1, result)
    except Exception as exc:  # py7zr raises many unrelated types on corrupt input
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable 7z: {exc}"[:300]))
