"""Computation-graph formats walked at the wire level: ONNX, TensorFlow SavedModel / GraphDef,
SentencePiece and TFLite. Nothing is instantiated and neither onnx nor tensorflow is imported.

What makes these formats dangerous is not deserialisation but what a runtime does with the graph:
ONNX ``external_data`` locations are opened as files (an absolute path or ``..`` reads anywhere on
the host), custom-op domains need a native library the user must load; TensorFlow graphs may hold
ops that read or write files or run Python (``PyFunc``); TFLite custom ops need native resolvers.
"""

from __future__ import annotations

import posixpath
import struct
from pathlib import PurePosixPath

from attest.scan.findings import Finding, dedupe
from attest.scan.static import protobuf as pb

MAX_GRAPH_DEPTH = 64
# Domains an ONNX runtime implements itself (onnxruntime's contrib ops included).
STANDARD_ONNX_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
    }
)
TF_PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
TF_FILE_OPS = frozenset({"ReadFile", "WriteFile", "MatchingFiles", "DeleteFile", "PrintV2"})
TF_CHECKPOINT_OPS = frozenset(
    {"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints"}
)
_SAVER_NODE = ("save/", "save_")
_SAVER_FUNCTIONS = ("_traced_save", "_traced_restore")


def scan_onnx(data: bytes | memoryview, rel: str, base: str) -> tuple[list[Finding], set[str]]:
    """ONNX ``ModelProto``: external-data locations, custom-op domains, nested subgraphs.

    ``base`` is the model-relative folder of the file: external data must stay inside the model.
    Also returns the model-relative paths of the external-data files it references (raw tensor
    bytes: known data, not "unanalysed")."""
    findings: list[Finding] = []
    references: set[str] = set()
    try:
        graphs = list(pb.messages(data, 7))
        if not graphs:
            raise pb.ProtobufError("no graph (field 7)")
        local = {(pb.first_text(f, 10), pb.first_text(f, 1)) for f in pb.messages(data, 25)}
        # (message, field number of its nodes, depth): GraphProto.node is 1, FunctionProto.node 7.
        pending: list[tuple[memoryview, int, int]] = [(g, 1, 0) for g in graphs]
        pending += [(f, 7, 0) for f in pb.messages(data, 25)]
        while pending:
            graph, node_field, depth = pending.pop()
            if depth > MAX_GRAPH_DEPTH:
                raise pb.ProtobufError(f"subgraphs nested more than {MAX_GRAPH_DEPTH} deep")
            for node in pb.messages(graph, node_field):
                domain, op = pb.first_text(node, 7), pb.first_text(node, 4)
                if domain not in STANDARD_ONNX_DOMAINS and (domain, op) not in local:
                    findings.append(
                        Finding(
                            "onnx.custom-op-domain",
                            "medium",
                            rel,
                            f"node {op!r} of custom domain {domain!r}: needs a native op library",
                            {"domain": domain, "opType": op},
                        )
                    )
                for attribute in pb.messages(node, 5):
                    pending += [(g, 1, depth + 1) for g in pb.messages(attribute, 6)]
                    pending += [(g, 1, depth + 1) for g in pb.messages(attribute, 11)]
                    for tensor in [*pb.messages(attribute, 5), *pb.messages(attribute, 10)]:
                        findings += _external_data(tensor, rel, base, references)
            if node_field == 7:
                continue
            for tensor in pb.messages(graph, 5):
                findings += _external_data(tensor, rel, base, references)
            for sparse in pb.messages(graph, 15):
                for tensor in [*pb.messages(sparse, 1), *pb.messages(sparse, 2)]:
                    findings += _external_data(tensor, rel, base, references)
    except pb.ProtobufError as exc:
        return [Finding("onnx.malformed", "high", rel, f"not a valid ONNX model: {exc}"[:300])], set()
    return dedupe(findings), references


def _external_data(tensor: memoryview, rel: str, base: str, references: set[str]) -> list[Finding]:
    out = []
    for entry in pb.messages(tensor, 13):
        if pb.first_text(entry, 1) != "location":
            continue
        location = pb.first_text(entry, 2)
        reason = escapes_model(location, base)
        if not reason:
            references.add(posixpath.normpath(posixpath.join(base, location.replace("\\", "/"))))
        if reason:
            out.append(
                Finding(
                    "onnx.external-data-path",
                    "high",
                    rel,
                    f"external_data location {location!r} {reason}",
                    {"location": location},
                )
            )
    return out


def escapes_model(location: str, base: str) -> str | None:
    """Why a relative file reference leaves the model folder (``None`` when it stays inside)."""
    if not location:
        return "is empty"
    if "\x00" in location:
        return "contains NUL"
    unified = location.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return "is absolute"
    joined = posixpath.normpath(posixpath.join(base, unified))
    if joined == ".." or joined.startswith("../"):
        return "escapes the model folder"
    return None


def scan_tensorflow(data: bytes | memoryview, rel: str) -> list[Finding]:
    """A SavedModel (``saved_model.pb``) or a frozen ``GraphDef``: ops that run Python or touch files,
    in the graph and in its function library.

    Checkpoint ops (``SaveV2``, ``RestoreV2``, ...) are in every SavedModel: its saver reads and writes
    the model's own ``variables/``. They are findings only outside the saver (a TF1 ``save/`` node, a
    TF2 ``__inference__traced_save`` / ``_traced_restore`` function), e.g. in a serving function, where
    they write or read any path."""
    name = PurePosixPath(rel.split("!")[-1]).name
    try:
        if name == "saved_model.pb":
            graph_defs = [g for meta in pb.messages(data, 2) for g in pb.messages(meta, 2)]
        else:
            graph_defs = [memoryview(data)] if _looks_like_graph_def(data) else []
        ops: list[tuple[str, bool]] = []  # (op, inside the saver)
        for graph in graph_defs:
            for node in pb.messages(graph, 1):
                ops.append((pb.first_text(node, 2), pb.first_text(node, 1).startswith(_SAVER_NODE)))
            for library in pb.messages(graph, 2):
                for function in pb.messages(library, 1):
                    signature = "".join(pb.first_text(sig, 1) for sig in pb.messages(function, 1))
                    in_saver = any(marker in signature for marker in _SAVER_FUNCTIONS)
                    ops += [(pb.first_text(node, 2), in_saver) for node in pb.messages(function, 3)]
        if not graph_defs:
            pb.validate(data)
    except pb.ProtobufError as exc:
        return [Finding("tensorflow.malformed", "high", rel, f"not a valid protobuf graph: {exc}"[:300])]
    findings = []
    for op, in_saver in sorted(set(ops)):
        if op in TF_PYTHON_OPS:
            findings.append(
                Finding(
                    "tensorflow.python-op", "critical", rel, f"graph runs Python through {op}", {"op": op}
                )
            )
        elif op in TF_FILE_OPS or (op in TF_CHECKPOINT_OPS and not in_saver):
            where = " outside the model's saver" if op in TF_CHECKPOINT_OPS else ""
            findings.append(
                Finding(
                    "tensorflow.file-op",
                    "high",
                    rel,
                    f"graph op {op}{where} reads or writes files",
                    {"op": op},
                )
            )
    return dedupe(findings)


def _looks_like_graph_def(data: bytes | memoryview) -> bool:
    """A GraphDef's field 1 holds NodeDef messages; other ``.pb`` files (fingerprints, metadata) do
    not, and are only checked for well-formedness."""
    for number, wire, _ in pb.fields(data):
        if number == 1:
            return wire == pb.LEN
    return False


def is_sentencepiece(data: bytes | memoryview) -> bool:
    """A SentencePiece ``ModelProto``: well-formed, field 1 repeated pieces each carrying a string."""
    try:
        pieces = 0
        for number, wire, value in pb.fields(data):
            if number == 1:
                if wire != pb.LEN or not isinstance(value, memoryview):
                    return False
                pb.first_text(value, 1)
                pieces += 1
            elif number > 5:
                return False
        return pieces > 0
    except pb.ProtobufError:
        return False


def scan_tflite(data: bytes | memoryview, rel: str) -> list[Finding]:
    """TFLite flatbuffer: the operator codes table; a custom op needs a native resolver (``Flex*`` ops
    run full TensorFlow kernels)."""
    buf = memoryview(data)
    try:
        model = _fb_table(buf, _u32(buf, 0))
        codes = _fb_vector_tables(buf, model, 1)
        customs = []
        for code in codes:
            builtin = _fb_scalar(buf, code, 3, "<i", 0)
            deprecated = _fb_scalar(buf, code, 0, "<b", 0)
            if builtin == 32 or deprecated == 32:  # BuiltinOperator.CUSTOM
                customs.append(_fb_string(buf, code, 1))
    except (ValueError, struct.error, IndexError) as exc:
        return [Finding("tflite.malformed", "high", rel, f"not a valid TFLite flatbuffer: {exc}"[:300])]
    return [
        Finding(
            "tflite.custom-op",
            "medium",
            rel,
            f"custom operator {name!r} needs a native op resolver",
            {"customCode": name},
        )
        for name in sorted(set(customs))
    ]


def _u32(buf: memoryview, pos: int) -> int:
    if pos < 0 or pos + 4 > len(buf):
        raise ValueError(f"offset {pos} out of bounds")
    return int(struct.unpack_from("<I", buf, pos)[0])


def _fb_table(buf: memoryview, pos: int) -> tuple[int, int]:
    """(table position, vtable position) after bounds checks."""
    if pos + 4 > len(buf):
        raise ValueError("table out of bounds")
    vtable = pos - struct.unpack_from("<i", buf, pos)[0]
    if vtable < 0 or vtable + 4 > len(buf):
        raise ValueError("vtable out of bounds")
    return pos, vtable


def _fb_field(buf: memoryview, table: tuple[int, int], index: int) -> int | None:
    pos, vtable = table
    vsize = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot + 2 > vsize or vtable + slot + 2 > len(buf):
        return None
    offset = struct.unpack_from("<H", buf, vtable + slot)[0]
    return pos + offset if offset else None


def _fb_scalar(buf: memoryview, table: tuple[int, int], index: int, fmt: str, default: int) -> int:
    at = _fb_field(buf, table, index)
    if at is None:
        return default
    if at + struct.calcsize(fmt) > len(buf):
        raise ValueError("scalar out of bounds")
    return int(struct.unpack_from(fmt, buf, at)[0])


def _fb_vector_tables(buf: memoryview, table: tuple[int, int], index: int) -> list[tuple[int, int]]:
    at = _fb_field(buf, table, index)
    if at is None:
        return []
    vec = at + _u32(buf, at)
    count = _u32(buf, vec)
    if count > (len(buf) - vec) // 4:
        raise ValueError("vector runs past the end")
    return [_fb_table(buf, vec + 4 + 4 * i + _u32(buf, vec + 4 + 4 * i)) for i in range(count)]


def _fb_string(buf: memoryview, table: tuple[int, int], index: int) -> str:
    at = _fb_field(buf, table, index)
    if at is None:
        return ""
    start = at + _u32(buf, at)
    length = _u32(buf, start)
    if start + 4 + length > len(buf):
        raise ValueError("string runs past the end")
    return bytes(buf[start + 4 : start + 4 + min(length, 256)]).decode("utf-8", "replace")
