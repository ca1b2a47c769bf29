"""Dispatch one file (or archive member) to the right checker by its magic bytes, recursing into
zip, tar and gzip containers with depth and size bounds.

Every pickle in a file is analysed: each ``.pkl`` member of a zip-format torch file, all five pickles
of a legacy torch file (scanners that stop after the first miss a payload in the fourth), the pickled
payload of an object-dtype ``.npy``, and pickles inside nested archives.
"""

from __future__ import annotations

import ast
import gzip
import io
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from attest.scan.findings import Finding
from attest.scan.static import formats
from attest.scan.static.pickle_scan import PickleReport, analyse_pickle, analyse_pickle_sequence, is_dangerous
from attest.scan.static.safetensors_header import HeaderError, SafetensorsHeader, read_header

MAX_DEPTH = 4
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 100_000
_HEAD = 512
_RAW_TORCH_MEMBER = re.compile(
    r"(^|/)(data/\d+|version|byteorder|\.data/serialization_id|\.format_version|\.storage_alignment)$"
)
_LEGACY_TORCH_PICKLES = 5  # magic number, protocol version, sys info, the object, storage keys


@dataclass
class FileScan:
    """Findings for one top-level file plus what later checks need (the safetensors header)."""

    findings: list[Finding] = field(default_factory=list)
    format: str = formats.UNKNOWN
    safetensors: SafetensorsHeader | None = None
    pickles: int = 0


def scan_path(path: Path, rel: str) -> FileScan:
    """Scan one regular file of the model folder."""
    result = FileScan()
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        handle.seek(0)
        _dispatch(handle, size, head, rel, 0, result)
    return result


def _dispatch(handle: IO[bytes], size: int, head: bytes, rel: str, depth: int, result: FileScan) -> None:
    kind = formats.detect(head, size)
    if depth == 0:
        result.format = kind
    lower = rel.lower()
    if lower.endswith(".safetensors"):
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
        _record(analyse_pickle_sequence(handle, size), rel, result, 1)
    elif kind == formats.NPY:
        _scan_npy(handle, size, rel, result)
    elif kind == formats.GZIP:
        _scan_gzip(handle, rel, depth, result)
    elif kind == formats.TAR:
        _scan_tar(handle, rel, depth, result)
    elif lower.endswith(formats.PICKLE_EXTENSIONS):
        # Protocol 0/1 pickles have no magic: anything a loader would unpickle must parse as a pickle.
        report = analyse_pickle(handle, 0)
        if report.error is None and report.globals:
            _record([report], rel, result, 1)
        elif kind != formats.TEXT or report.error is None:
            result.findings.append(
                Finding(
                    "format.unrecognised",
                    "medium",
                    rel,
                    f"pickle-loadable name but unrecognised {kind} content",
                )
            )


def _scan_safetensors(handle: IO[bytes], size: int, rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        header = read_header(handle, size)
    except HeaderError as exc:
        result.findings.append(Finding(exc.rule, "high", rel, str(exc)))
        return
    if depth == 0:
        result.safetensors = header


def _record(reports: list[PickleReport], rel: str, result: FileScan, required: int) -> None:
    """Turn pickle reports into findings. The first ``required`` streams must parse; a later stream
    that fails is raw data following the pickles (numpy/joblib style), not a finding."""
    for index, report in enumerate(reports):
        if report.error is not None:
            if index < required:
                result.findings.append(
                    Finding("pickle.malformed", "high", rel, f"pickle #{index}: {report.error}")
                )
            break
        result.pickles += 1
        for module, name in report.disallowed:
            dangerous = is_dangerous(module, name)
            result.findings.append(
                Finding(
                    "pickle.global-dangerous" if dangerous else "pickle.global-not-allowed",
                    "critical" if dangerous else "high",
                    rel,
                    f"pickle #{index} imports {module}.{name}",
                    {"module": module, "name": name},
                )
            )
        if report.unresolved_globals:
            result.findings.append(
                Finding(
                    "pickle.global-unresolved",
                    "high",
                    rel,
                    f"pickle #{index}: {report.unresolved_globals} STACK_GLOBAL with non-constant operands",
                )
            )
        if report.extension_codes:
            result.findings.append(
                Finding(
                    "pickle.extension-opcode",
                    "high",
                    rel,
                    f"pickle #{index} imports through the copyreg extension registry",
                )
            )
    if len(reports) < required and not any(r.error for r in reports):
        result.findings.append(
            Finding("pickle.malformed", "high", rel, f"expected {required} pickles, found {len(reports)}")
        )


def _scan_npy(handle: IO[bytes], size: int, rel: str, result: FileScan) -> None:
    handle.seek(0)
    prefix = handle.read(10)
    major = prefix[6] if len(prefix) > 6 else 0
    try:
        if major == 1:
            hlen, start = int.from_bytes(prefix[8:10], "little"), 10
        else:
            hlen, start = int.from_bytes(prefix[8:10] + handle.read(2), "little"), 12
        if hlen > 1_000_000:
            raise ValueError("header too large")
        handle.seek(start)
        header = ast.literal_eval(handle.read(hlen).decode("latin-1"))
        descr = header["descr"]
    except Exception as exc:  # any malformed header is a finding, never a crash
        result.findings.append(Finding("npy.malformed", "high", rel, f"unreadable .npy header: {exc}"[:300]))
        return
    if "O" in str(descr):
        result.findings.append(
            Finding("npy.object-dtype", "high", rel, f"object dtype {descr!r}: loading unpickles")
        )
        _record([analyse_pickle(handle, start + hlen)], rel, result, 1)


def _read_bounded(stream: IO[bytes], rel: str, result: FileScan) -> bytes | None:
    data = stream.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        result.findings.append(
            Finding("archive.member-too-large", "medium", rel, "member over 512 MiB not scanned")
        )
        return None
    return data


def _scan_member(data: bytes, rel: str, depth: int, result: FileScan) -> None:
    if depth > MAX_DEPTH:
        result.findings.append(
            Finding("archive.too-deep", "high", rel, f"archives nested more than {MAX_DEPTH} deep")
        )
        return
    if rel.lower().endswith((".pkl", ".pickle")):
        _record(analyse_pickle_sequence(data, len(data)), rel, result, 1)
        return
    _dispatch(io.BytesIO(data), len(data), data[:_HEAD], rel, depth, result)


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
            for info in infos:
                if info.is_dir() or _RAW_TORCH_MEMBER.search(info.filename):
                    continue
                with archive.open(info) as member:
                    data = _read_bounded(member, f"{rel}!{info.filename}", result)
                if data is not None:
                    _scan_member(data, f"{rel}!{info.filename}", depth + 1, result)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable zip: {exc}"[:300]))


def _scan_gzip(handle: IO[bytes], rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        with gzip.GzipFile(fileobj=handle) as inner:
            data = _read_bounded(inner, rel, result)  # type: ignore[arg-type]
    except (OSError, EOFError) as exc:
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable gzip: {exc}"[:300]))
        return
    if data is not None:
        _scan_member(data, f"{rel}!gunzip", depth + 1, result)


def _scan_tar(handle: IO[bytes], rel: str, depth: int, result: FileScan) -> None:
    handle.seek(0)
    try:
        with tarfile.open(fileobj=handle) as archive:
            for count, info in enumerate(archive):
                if count >= MAX_MEMBERS:
                    break
                if not info.isfile():
                    continue
                member = archive.extractfile(info)
                if member is None:
                    continue
                data = _read_bounded(member, f"{rel}!{info.name}", result)
                if data is not None:
                    _scan_member(data, f"{rel}!{info.name}", depth + 1, result)
    except (tarfile.TarError, OSError, EOFError) as exc:
        result.findings.append(Finding("archive.malformed", "high", rel, f"unreadable tar: {exc}"[:300]))
