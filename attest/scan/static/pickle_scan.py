"""Pickle opcode analysis with a default-deny allowlist of globals. Never unpickles.

Blocklists keep being bypassed (``timeit``, ``cProfile.run``, ``pkgutil.resolve_name`` chains,
``pip.main``, memo/``STACK_GLOBAL`` confusion), so every global a pickle imports must be on a short
allowlist of what plain tensor checkpoints need; anything else is a finding. ``STACK_GLOBAL`` operands
are resolved by emulating the stack and the memo (``PUT``/``GET``/``MEMOIZE``) symbolically; a global
whose name cannot be resolved to constant strings is itself a finding, and a stream that does not parse
is a failure, never "clean".
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field
from typing import IO

# Globals a weights-only checkpoint legitimately imports (torch.save state dicts, numpy arrays).
_TORCH_STORAGES = [
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "UntypedStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
]
_TORCH_DTYPES = [
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "complex128",
    "float8_e4m3fn",
    "float8_e5m2",
    "uint16",
    "uint32",
    "uint64",
]
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._utils", "_rebuild_qtensor"),
        ("torch._utils", "_rebuild_sparse_tensor"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.parameter", "Parameter"),
        ("torch", "Tensor"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch.storage", "UntypedStorage"),
        ("torch.storage", "TypedStorage"),
        ("torch", "per_tensor_affine"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.dtypes", "Float32DType"),
        ("numpy.dtypes", "Float64DType"),
        ("numpy.dtypes", "Int64DType"),
        ("numpy.dtypes", "Int32DType"),
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "slice"),
        ("__builtin__", "set"),
        ("__builtin__", "frozenset"),
        ("__builtin__", "complex"),
    ]
    + [("torch", name) for name in _TORCH_STORAGES + _TORCH_DTYPES]
)

# Modules whose import means code execution for sure: reported as critical rather than high.
_DANGEROUS_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "builtins",
        "__builtin__",
        "runpy",
        "pty",
        "socket",
        "shutil",
        "timeit",
        "cProfile",
        "profile",
        "pdb",
        "pkgutil",
        "importlib",
        "code",
        "codeop",
        "ctypes",
        "marshal",
        "types",
        "webbrowser",
        "pip",
        "operator",
        "functools",
        "asyncio",
        "multiprocessing",
        "tempfile",
        "pathlib",
        "glob",
        "io",
        "requests",
        "urllib",
        "http",
    ]
)
_DANGEROUS_NAMES = frozenset(
    [
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "apply",
        "system",
        "popen",
        "run",
        "call",
        "check_output",
        "resolve_name",
        "import_module",
        "main",
        "attrgetter",
        "methodcaller",
        "loads",
        "load",
    ]
)

_STRING_OPS = frozenset(
    ["STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"]
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})

MAX_OPCODES = 50_000_000


class _Mark:
    """The MARK sentinel on the emulated stack."""


class _Unknown:
    """A value the emulator does not track (numbers, tuples, objects being built)."""


_MARK = _Mark()
_UNKNOWN = _Unknown()


@dataclass
class PickleReport:
    """What one pickle stream imports and whether it parsed. ``end`` is the offset after STOP."""

    globals: list[tuple[str, str]] = field(default_factory=list)
    unresolved_globals: int = 0
    extension_codes: int = 0
    error: str | None = None
    end: int = 0
    protocol: int | None = None

    @property
    def disallowed(self) -> list[tuple[str, str]]:
        """Imported globals that are not on the allowlist, in order, deduplicated."""
        seen: list[tuple[str, str]] = []
        for g in self.globals:
            if g not in SAFE_GLOBALS and g not in seen:
                seen.append(g)
        return seen


def is_dangerous(module: str, name: str) -> bool:
    """Whether a global is a known code-execution primitive (critical rather than merely unknown)."""
    root = module.split(".")[0]
    return root in _DANGEROUS_MODULES or name in _DANGEROUS_NAMES


def analyse_pickle(source: bytes | IO[bytes], start: int = 0) -> PickleReport:
    """Walk one pickle stream beginning at ``start`` with ``pickletools.genops``, emulating only what
    is needed to resolve the operands of ``STACK_GLOBAL`` (strings on the stack and in the memo).

    ``source`` may be an open seekable file, so multi-gigabyte legacy checkpoints are read as a
    stream: only the pickles are parsed, the raw storage bytes after them are never read."""
    report = PickleReport()
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    stream.seek(start)
    stack: list[object] = []
    memo: dict[int, object] = {}
    count = 0
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            count += 1
            if count > MAX_OPCODES:
                raise ValueError("too many opcodes")
            name = opcode.name
            if name == "PROTO":
                report.protocol = int(arg)  # type: ignore[arg-type]
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                report.globals.append((module, attr))
            elif name == "STACK_GLOBAL":
                if len(stack) < 2:
                    raise ValueError(f"STACK_GLOBAL on a short stack at byte {pos}")
                attr_v, module_v = stack.pop(), stack.pop()
                if isinstance(module_v, str) and isinstance(attr_v, str):
                    report.globals.append((module_v, attr_v))
                else:
                    report.unresolved_globals += 1
                stack.append(_UNKNOWN)
                continue
            elif name in _EXT_OPS:
                report.extension_codes += 1
            if name in _STRING_OPS:
                value = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
                stack.append(value)
                continue
            if name in _PUT_OPS:
                if not stack:
                    raise ValueError(f"PUT on an empty stack at byte {pos}")
                memo[int(arg)] = stack[-1]  # type: ignore[arg-type]
                continue
            if name == "MEMOIZE":
                if not stack:
                    raise ValueError(f"MEMOIZE on an empty stack at byte {pos}")
                memo[len(memo)] = stack[-1]
                continue
            if name in _GET_OPS:
                if int(arg) not in memo:  # type: ignore[arg-type]
                    raise ValueError(f"GET of an unset memo slot at byte {pos}")
                stack.append(memo[int(arg)])  # type: ignore[arg-type]
                continue
            if name == "DUP":
                if not stack:
                    raise ValueError(f"DUP on an empty stack at byte {pos}")
                stack.append(stack[-1])
                continue
            if name == "STOP":
                report.end = stream.tell()
                return report
            _apply_stack_effect(stack, opcode, pos)
        raise ValueError("stream ended without STOP")
    except Exception as exc:  # pickletools raises ValueError and friends on malformed input
        report.error = f"malformed pickle: {exc}"[:300]
        report.end = stream.tell()
        return report


def _apply_stack_effect(stack: list[object], opcode: pickletools.OpcodeInfo, pos: int | None) -> None:
    """Generic stack effect from pickletools' opcode metadata: pop what it consumes (up to the MARK
    for stack slices), push placeholders for what it produces."""
    for item in reversed(opcode.stack_before):
        if item is pickletools.stackslice:
            while stack and stack[-1] is not _MARK:
                stack.pop()
            if not stack:
                raise ValueError(f"{opcode.name} without MARK at byte {pos}")
        elif item is pickletools.markobject:
            if not stack or stack.pop() is not _MARK:
                raise ValueError(f"{opcode.name} expected MARK at byte {pos}")
        else:
            if not stack:
                raise ValueError(f"{opcode.name} on an empty stack at byte {pos}")
            stack.pop()
    for item in opcode.stack_after:
        stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)


def analyse_pickle_sequence(
    source: bytes | IO[bytes], size: int, expected: int | None = None
) -> list[PickleReport]:
    """Analyse consecutive pickles (legacy torch files hold five; joblib-style files several).

    With ``expected`` the first ``expected`` streams must all parse; without it, streams are read
    until one fails to parse or the data ends (the failing tail is returned as the last report)."""
    reports: list[PickleReport] = []
    offset = 0
    while offset < size:
        report = analyse_pickle(source, offset)
        reports.append(report)
        if report.error is not None or report.end <= offset:
            break
        offset = report.end
        if expected is not None and len(reports) >= expected:
            break
    return reports
