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
import math
import pickletools
import re
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
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
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
_INT_OPS = frozenset(["INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"])
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})
_CONSTANTS: dict[str, object] = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
# Opcodes that call what the stack holds: a global consumed by one of them runs when unpickled.
_CALL_OPS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST", "BUILD"})

MAX_OPCODES = 50_000_000
MAX_STACK = 10_000_000  # emulated stack entries (MARK spam would otherwise grow it without bound)
# joblib writes each numpy array's raw bytes straight after the wrapper's BUILD opcode.
_JOBLIB_WRAPPERS = frozenset({("joblib.numpy_pickle", "NumpyArrayWrapper")})
_NUMPY_DTYPE = frozenset({("numpy", "dtype")})
_DTYPE_CODE = re.compile(r"^[<>|=]?([biufcSVUmM])(\d*)(?:\[\w+\])?$")


class _Mark:
    """The MARK sentinel on the emulated stack."""


class _Unknown:
    """A value the emulator does not track (floats, bytes, lists, objects being built)."""


@dataclass(frozen=True)
class _Global:
    """A global pushed by ``GLOBAL`` / ``STACK_GLOBAL`` (never imported, only named)."""

    module: str
    name: str


@dataclass
class _Dict:
    """A dict under construction whose constant items are tracked (joblib wrapper state)."""

    items: dict[object, object] = field(default_factory=dict)


@dataclass
class _Object:
    """What a ``REDUCE`` / ``NEWOBJ`` / ``OBJ`` / ``INST`` would build: the callable and its args."""

    callable: object
    args: object = None


_MARK = _Mark()
_UNKNOWN = _Unknown()


@dataclass
class PickleReport:
    """What one pickle stream imports and whether it parsed.

    ``start`` / ``end`` delimit the stream (``end`` is the offset after STOP, or where parsing
    stopped); ``called`` lists globals consumed by a call opcode (they would run on load)."""

    globals: list[tuple[str, str]] = field(default_factory=list)
    called: list[tuple[str, str]] = field(default_factory=list)
    unresolved_globals: int = 0
    extension_codes: int = 0
    error: str | None = None
    start: int = 0
    end: int = 0
    protocol: int | None = None
    opcodes: int = 0

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
    """Walk one pickle stream beginning at ``start`` with ``pickletools.genops``, emulating the stack
    and memo symbolically: enough to resolve ``STACK_GLOBAL`` operands (strings on the stack and in
    the memo) and to skip the raw array bytes joblib writes after each ``NumpyArrayWrapper``.

    ``source`` may be an open seekable file, so multi-gigabyte legacy checkpoints are read as a
    stream: only the pickles are parsed, the raw storage bytes after them are never read. Globals
    seen before a parse error are kept: a truncated stream still imports them when loaded."""
    report = PickleReport(start=start)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(start)
    emulator = _Emulator(report, stream, size)
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            report.opcodes += 1
            if report.opcodes > MAX_OPCODES:
                raise ValueError("too many opcodes")
            if len(emulator.stack) > MAX_STACK:
                raise ValueError(f"stack deeper than {MAX_STACK} entries")
            if opcode.name == "STOP":
                emulator.pop(opcode.name, pos)
                report.end = stream.tell()
                return report
            emulator.step(opcode, arg, pos)
        raise ValueError("stream ended without STOP")
    except Exception as exc:  # pickletools raises ValueError and friends on malformed input
        report.error = f"malformed pickle: {exc}"[:300]
        report.end = stream.tell()
        return report


class _Emulator:
    """The symbolic stack machine behind :func:`analyse_pickle` (never calls or imports anything)."""

    def __init__(self, report: PickleReport, stream: IO[bytes], size: int) -> None:
        self.report, self.stream, self.size = report, stream, size
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def pop(self, name: str, pos: int | None) -> object:
        if not self.stack:
            raise ValueError(f"{name} on an empty stack at byte {pos}")
        value = self.stack.pop()
        if value is _MARK:
            raise ValueError(f"{name} found a MARK where it expected a value at byte {pos}")
        return value

    def pop_mark(self, name: str, pos: int | None) -> list[object]:
        """Pop everything above the topmost MARK, and the MARK itself."""
        items: list[object] = []
        while self.stack and self.stack[-1] is not _MARK:
            items.append(self.stack.pop())
        if not self.stack:
            raise ValueError(f"{name} without MARK at byte {pos}")
        self.stack.pop()
        items.reverse()
        return items

    def call(self, func: object, args: object) -> _Object:
        if isinstance(func, _Global):
            self.report.called.append((func.module, func.name))
        return _Object(func, args)

    def step(self, opcode: pickletools.OpcodeInfo, arg: object, pos: int | None) -> None:
        name, report, stack = opcode.name, self.report, self.stack
        if name == "PROTO":
            report.protocol = int(arg)  # type: ignore[call-overload]
        elif name in _STRING_OPS:
            stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name in _INT_OPS:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            report.globals.append((module, attr))
            if name == "GLOBAL":
                stack.append(_Global(module, attr))
            else:
                stack.append(self.call(_Global(module, attr), tuple(self.pop_mark(name, pos))))
        elif name == "STACK_GLOBAL":
            attr_v, module_v = self.pop(name, pos), self.pop(name, pos)
            if isinstance(module_v, str) and isinstance(attr_v, str):
                report.globals.append((module_v, attr_v))
                stack.append(_Global(module_v, attr_v))
            else:
                report.unresolved_globals += 1
                stack.append(_UNKNOWN)
        elif name in _EXT_OPS:
            report.extension_codes += 1
            stack.append(_UNKNOWN)
        elif name in _PUT_OPS:
            if not stack:
                raise ValueError(f"PUT on an empty stack at byte {pos}")
            self.memo[int(arg)] = stack[-1]  # type: ignore[call-overload]
        elif name == "MEMOIZE":
            if not stack:
                raise ValueError(f"MEMOIZE on an empty stack at byte {pos}")
            self.memo[len(self.memo)] = stack[-1]
        elif name in _GET_OPS:
            if int(arg) not in self.memo:  # type: ignore[call-overload]
                raise ValueError(f"GET of an unset memo slot at byte {pos}")
            stack.append(self.memo[int(arg)])  # type: ignore[call-overload]
        elif name == "DUP":
            stack.append(stack[-1] if stack else self.pop(name, pos))
        elif name in _TUPLE_N:
            items = [self.pop(name, pos) for _ in range(_TUPLE_N[name])]
            stack.append(tuple(reversed(items)))
        elif name == "TUPLE":
            stack.append(tuple(self.pop_mark(name, pos)))
        elif name == "EMPTY_DICT":
            stack.append(_Dict())
        elif name == "DICT":
            items = self.pop_mark(name, pos)
            stack.append(_Dict(_pairs(items)))
        elif name == "SETITEM":
            value, key = self.pop(name, pos), self.pop(name, pos)
            self._set_items(name, pos, [key, value])
        elif name == "SETITEMS":
            self._set_items(name, pos, self.pop_mark(name, pos))
        elif name == "REDUCE":
            args, func = self.pop(name, pos), self.pop(name, pos)
            stack.append(self.call(func, args))
        elif name == "NEWOBJ":
            args, cls = self.pop(name, pos), self.pop(name, pos)
            stack.append(self.call(cls, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = self.pop(name, pos), self.pop(name, pos), self.pop(name, pos)
            stack.append(self.call(cls, args))
        elif name == "OBJ":
            items = self.pop_mark(name, pos)
            if not items:
                raise ValueError(f"OBJ without a class at byte {pos}")
            stack.append(self.call(items[0], tuple(items[1:])))
        elif name == "BUILD":
            state = self.pop(name, pos)
            target = self.pop(name, pos)
            stack.append(target)
            if (
                isinstance(target, _Object)
                and isinstance(target.callable, _Global)
                and (target.callable.module, target.callable.name) in _JOBLIB_WRAPPERS
            ):
                self._skip_joblib_array(state, pos)
        else:
            self._generic(opcode, pos)

    def _set_items(self, name: str, pos: int | None, items: list[object]) -> None:
        if not self.stack or self.stack[-1] is _MARK:
            raise ValueError(f"{name} without a dict at byte {pos}")
        target = self.stack[-1]
        if isinstance(target, _Dict):
            target.items.update(_pairs(items))

    def _generic(self, opcode: pickletools.OpcodeInfo, pos: int | None) -> None:
        """Stack effect from pickletools' metadata: values below a MARK, the MARK and the slice
        above it are popped; placeholders are pushed for what the opcode produces."""
        before = opcode.stack_before
        if pickletools.markobject in before:
            self.pop_mark(opcode.name, pos)
            for _ in range(before.index(pickletools.markobject)):
                self.pop(opcode.name, pos)
        else:
            for _ in before:
                self.pop(opcode.name, pos)
        for item in opcode.stack_after:
            self.stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)

    def _skip_joblib_array(self, state: object, pos: int | None) -> None:
        """Step over the array joblib wrote after the wrapper: an alignment pad and the raw bytes,
        or (object dtype) a nested pickle, which is analysed like any other."""
        if not isinstance(state, _Dict):
            raise ValueError(f"joblib array wrapper without a readable state at byte {pos}")
        shape, dtype = state.items.get("shape"), state.items.get("dtype")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"joblib array wrapper with shape {shape!r} at byte {pos}")
        code = _dtype_code(dtype)
        if code is None:
            raise ValueError(f"joblib array wrapper with an unreadable dtype at byte {pos}")
        if code == "O":
            nested = analyse_pickle(self.stream, self.stream.tell())
            self.report.globals.extend(nested.globals)
            self.report.called.extend(nested.called)
            self.report.unresolved_globals += nested.unresolved_globals
            self.report.extension_codes += nested.extension_codes
            if nested.error is not None:
                raise ValueError(f"joblib object array: {nested.error}")
            self.stream.seek(nested.end)
            return
        if state.items.get("numpy_array_alignment_bytes") is not None:
            pad = self.stream.read(1)
            if len(pad) != 1:
                raise ValueError("joblib array padding runs past the end")
            self.stream.seek(pad[0], io.SEEK_CUR)
        nbytes = math.prod(shape) * _itemsize(code)
        after = self.stream.tell() + nbytes
        if after > self.size:
            raise ValueError(f"joblib array of {nbytes} bytes runs past the end of the data")
        self.stream.seek(after)


def _pairs(items: list[object]) -> dict[object, object]:
    """Key/value pairs of a ``DICT`` / ``SETITEMS`` slice; only constant keys are tracked."""
    if len(items) % 2:
        raise ValueError("odd number of items for a dict")
    return {items[i]: items[i + 1] for i in range(0, len(items), 2) if isinstance(items[i], str | int)}


def _dtype_code(dtype: object) -> str | None:
    """The numpy type string (``'<f4'``) of a ``numpy.dtype(...)`` call, or ``'O'`` for objects."""
    if not isinstance(dtype, _Object) or not isinstance(dtype.callable, _Global):
        return None
    if (dtype.callable.module, dtype.callable.name) not in _NUMPY_DTYPE:
        return None
    args = dtype.args
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        return None
    text = args[0]
    if text.lstrip("<>|=").startswith("O"):
        return "O"
    return text if _DTYPE_CODE.match(text) else None


def _itemsize(code: str) -> int:
    match = _DTYPE_CODE.match(code)
    assert match is not None
    kind, digits = match.groups()
    if kind in "mM":
        return 8
    if not digits:
        return 1 if kind == "b" else 0
    return int(digits) * (4 if kind == "U" else 1)


# Where a hidden stream may begin: a protocol 2-5 PROTO opcode, or a protocol 0/1 GLOBAL / INST.
_STREAM_START = re.compile(rb"\x80[\x02-\x05]|[ci][A-Za-z_][\w.]{0,127}\n[A-Za-z_][\w.]{0,127}\n")
TAIL_SCAN_BYTES = 64 * 1024 * 1024


def analyse_pickle_sequence(
    source: bytes | IO[bytes], size: int, expected: int | None = None
) -> list[PickleReport]:
    """Analyse consecutive pickles (legacy torch files hold five; a pickle may be followed by more).

    With ``expected`` exactly the first ``expected`` streams are read (legacy torch: raw storage
    bytes follow them). Without it, streams are read until one fails to parse or the data ends;
    the failing tail is returned as the last report."""
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


def hidden_pickles(source: bytes | IO[bytes], start: int, size: int) -> list[PickleReport]:
    """Pickle streams hidden in ``[start, size)`` after the file's own streams, behind garbage.

    ``pickle.load`` reads only the first stream, but a loader can seek past it, so the tail is
    searched (its first 64 MiB) for every offset where a stream could begin; each candidate that
    imports a global is returned. Candidates inside an already found stream are skipped."""
    if isinstance(source, bytes):
        tail = source[start : start + TAIL_SCAN_BYTES]
    else:
        source.seek(start)
        tail = source.read(min(TAIL_SCAN_BYTES, max(size - start, 0)))
    found: list[PickleReport] = []
    covered = 0
    for match in _STREAM_START.finditer(tail):
        if match.start() < covered:
            continue
        report = analyse_pickle(tail, match.start())
        if report.globals or report.unresolved_globals or report.extension_codes:
            report.start, report.end = start + report.start, start + report.end
            found.append(report)
            covered = report.end - start
    return found
