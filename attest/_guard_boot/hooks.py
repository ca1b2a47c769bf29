"""The loader hooks of the verify-before-load guard, in the standard library only.

Why standard library only: ``attest run`` starts programs in interpreters that cannot import attest or
its dependencies (another virtual environment, another Python version, ``python -I``). This module is
loaded there by file path, under the name ``_attest_guard_hooks``, and never imports attest: verifying
a model happens in attest's own interpreter (a short subprocess, see ``subprocess_verifier``) or, for
``attest.guard.install()``, in-process. Either way this module only sees "give me a verified snapshot
of this folder" answered by a path, or a refusal.

What it does:

* **wraps every loader** named in ``TARGETS`` (transformers, remote code, safetensors, torch, numpy
  pickles, joblib, diffusers, sentence-transformers) so that its path argument is redirected to a
  private verified snapshot of the model folder, and the load is refused when the folder does not
  verify. Paths already inside a verified snapshot pass through untouched (nested loaders).
* **patches modules when they are imported** (a ``sys.meta_path`` finder), so installing the guard is
  cheap and a module imported later, lazily or after ``install``, is patched before anyone can call it;
  stale references to the originals held by modules imported earlier are rebound.
* **refuses paths that leave the verified root**: ``subfolder=``, ``gguf_file=`` and other ``*_file``
  arguments are resolved against the snapshot and must stay inside a verified snapshot.
* **resolves hub ids through the local Hugging Face cache** (``models--org--name/snapshots/<rev>/``),
  never the network, and verifies that snapshot like any folder.
* **carries the guard into child processes**: ``multiprocessing`` spawn and forkserver children run a
  prelude that installs the guard before the child's code, or exit with status 3.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEBUG_ENV = "ATTEST_GUARD_DEBUG"
SPEC_ENV = "ATTEST_GUARD_SPEC"
MODULE_NAME = "_attest_guard_hooks"
EXIT_CANNOT_PROTECT = 3

# source folder -> verified snapshot of it; the verifier raises ModelRefused or returns
# (snapshot folder, one-line summary of what was checked).
Verifier = Callable[[Path], tuple[Path, str]]


class ModelRefused(Exception):
    """A loader was asked to load something that did not verify under the configured policy.

    One line: ``refusing to load <path>: <reason>``. ``decision`` holds the policy decision when the
    verification ran in this process (``attest.guard.install``), else ``None``.
    """

    exit_code = 1
    http_status = 403

    def __init__(self, path: Any, why: str, decision: Any = None) -> None:
        self.path = str(path)
        self.why = " ".join(str(why).split()) or "not verified"
        self.decision = decision
        self.message = f"refusing to load {self.path}: {self.why}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (multiprocessing results)
        return (type(self), (self.path, self.why))


def debug(message: str) -> None:
    """``ATTEST_GUARD_DEBUG=1``: say on stderr what the guard checked and patched."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        print(f"attest-guard: {message}", file=sys.stderr, flush=True)


class _State:
    def __init__(self) -> None:
        self.verifier: Verifier | None = None
        self.spec: dict[str, Any] | None = None
        self.snapshots: dict[Path, Path] = {}  # source folder -> snapshot folder
        self.roots: list[Path] = []  # resolved snapshot folders
        # (owner id, attribute) -> (owner, attribute, original value as stored on the owner, wrapper)
        self.patched: dict[tuple[int, str], tuple[Any, str, Any, Any]] = {}
        self.lock = threading.RLock()
        self.finder: _PatchOnImport | None = None


STATE = _State()


# --------------------------------------------------------------------------------------------------
# Paths: what may be loaded, and from where


def inside_verified(path: Any) -> bool:
    """True when ``path`` (followed through links) lies inside a verified snapshot."""
    try:
        p = Path(os.fspath(path)).resolve()
    except (OSError, TypeError, ValueError):
        return False
    return any(p == root or root in p.parents for root in STATE.roots)


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hf_cache_dirs(cache_dir: Any = None) -> list[Path]:
    """Where the Hugging Face hub client keeps its cache, in the order it looks."""
    if cache_dir:
        return [Path(os.fspath(cache_dir)).expanduser()]
    out = []
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]).expanduser())
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out.append(Path(xdg) / "huggingface" / "hub")
    return out


def resolve_hub_id(repo_id: str, revision: Any = None, cache_dir: Any = None) -> Path | None:
    """The local snapshot folder of a hub model id, or None. Never touches the network."""
    if not _HUB_ID.match(repo_id) or ".." in repo_id:
        return None
    rev = str(revision) if revision else "main"
    for cache in hf_cache_dirs(cache_dir):
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        commit = rev if _COMMIT.match(rev) else None
        if commit is None:
            ref = repo / "refs" / rev
            if "/" in rev or ".." in rev or not ref.is_file():
                continue
            commit = ref.read_text().strip()
            if not _COMMIT.match(commit):
                continue
        snap = repo / "snapshots" / commit
        if snap.is_dir():
            return snap
    return None


def _same_type(original: Any, new: Path) -> Any:
    return new if isinstance(original, Path) else str(new)


def redirect(path_like: Any, kwargs: dict[str, Any] | None = None) -> Any:
    """Map the path a loader was given to the same path inside a verified snapshot (or refuse).

    A file is verified as part of the folder holding it. A hub id (``org/name``) is looked up in the
    local Hugging Face cache with the call's ``revision`` / ``cache_dir``; it is never downloaded.
    """
    kwargs = kwargs or {}
    if isinstance(path_like, bytes):
        path_like = os.fsdecode(path_like)
    if not isinstance(path_like, (str, os.PathLike)):
        raise ModelRefused(
            type(path_like).__name__,
            "only files on disk can be verified before load (streams and bytes are not)",
        )
    text = os.fspath(path_like)
    path = Path(text).expanduser()
    if not path.exists():
        snap = resolve_hub_id(text, kwargs.get("revision"), kwargs.get("cache_dir"))
        if snap is None:
            if _HUB_ID.match(text) and not text.startswith("."):
                raise ModelRefused(
                    text,
                    "not a local path and not in the local Hugging Face cache "
                    "(download it first, e.g. `attest pull`; the guard never fetches)",
                )
            raise ModelRefused(text, "no such file or directory")
        debug(f"{text}: hub id resolved in the local cache to {snap}")
        return str(verify_folder(snap))
    if inside_verified(path):
        return path_like
    absolute = Path(os.path.abspath(path))
    with STATE.lock:  # inside a folder verified earlier: the same snapshot serves
        for source, snapshot in STATE.snapshots.items():
            if absolute == source or source in absolute.parents:
                return _same_type(path_like, snapshot / absolute.relative_to(source))
    root = model_root(absolute)
    return _same_type(path_like, verify_folder(root) / absolute.relative_to(root))


def model_root(target: Path, levels: int = 8) -> Path:
    """The folder to verify for a path: the nearest folder at or above it whose bundle *claims* to list
    the path (``attest pull`` and ``attest sign`` leave bundles at the model's root), else the path's
    own folder. The claim only chooses the folder: that folder is then verified like any other, and
    the path must be in its signed manifest to load."""
    start = target if target.is_dir() else target.parent
    for folder in [start, *start.parents][:levels]:
        rel = "" if folder == target else target.relative_to(folder).as_posix()
        try:
            bundles = sorted(folder.glob("*.sigstore.json"))
        except OSError:
            break
        if bundles and (folder == start or any(_bundle_lists(b, rel) for b in bundles)):
            return folder
    return start


def _bundle_lists(bundle: Path, rel: str) -> bool:
    """Does this (unverified) manifest bundle name ``rel`` or a file below it?"""
    import base64

    try:
        if bundle.stat().st_size > 64 * 1024 * 1024:
            return False
        envelope = json.loads(bundle.read_bytes()).get("dsseEnvelope", {})
        statement = json.loads(base64.b64decode(envelope.get("payload", "")))
        paths = [f.get("path", "") for f in statement.get("predicate", {}).get("files", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return False
    return any(p == rel or p.startswith(rel + "/") for p in paths)


_HELD: list[int] = []  # open, share-locked snapshot folders: kept until this process exits


def hold(snapshot: Path) -> None:
    """Share-lock a snapshot's folder for this process's lifetime, so that the verified store's sweep
    (which removes snapshots left behind by killed programs) never takes one still in use."""
    try:
        fd = os.open(snapshot, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH)
    except (ImportError, OSError):  # pragma: no cover - not Linux
        os.close(fd)
        return
    _HELD.append(fd)


def verify_folder(source: Path) -> Path:
    """The verified snapshot of a folder (cached per process), or ModelRefused."""
    with STATE.lock:
        cached = STATE.snapshots.get(source)
        if cached is not None:
            return cached
        if STATE.verifier is None:
            raise ModelRefused(source, "the guard has no verifier configured (no policy)")
        snapshot, summary = STATE.verifier(source)
        STATE.snapshots[source] = snapshot
        STATE.roots.append(snapshot.resolve())
        debug(f"{source}: verified, loading from snapshot {snapshot} ({summary})")
        return snapshot


def check_inside(root: Any, kwargs: dict[str, Any]) -> None:
    """``subfolder=``, ``gguf_file=`` and other ``*_file=`` arguments must stay in a verified snapshot."""
    base = Path(os.fspath(root)) if isinstance(root, (str, os.PathLike)) else None
    sub = kwargs.get("subfolder")
    if sub and base is not None:
        target = base / os.fspath(sub)
        if not inside_verified(target):
            raise ModelRefused(f"{base}/{sub}", f"subfolder={sub!r} leaves the verified model folder")
    gguf = kwargs.get("gguf_file")
    if gguf and base is not None:
        target = base / os.fspath(sub or "") / os.fspath(gguf)
        if not inside_verified(target):
            raise ModelRefused(gguf, f"gguf_file={gguf!r} leaves the verified model folder")
    for name, value in kwargs.items():
        if name == "gguf_file" or not name.endswith("_file") or not isinstance(value, (str, os.PathLike)):
            continue
        if os.path.exists(value) and not inside_verified(value):
            raise ModelRefused(value, f"{name}= names a file outside the verified model folder")


# --------------------------------------------------------------------------------------------------
# Wrapping loaders


class ArgSpec:
    """Where a loader takes its path: positional index (after ``self``/``cls``) and keyword names."""

    def __init__(
        self,
        index: int,
        names: Sequence[str],
        *,
        folder_kwargs: bool = False,
        allow_none: bool = False,
        only_if: Callable[[tuple[Any, ...], dict[str, Any]], bool] | None = None,
    ) -> None:
        self.index = index
        self.names = tuple(names)
        self.folder_kwargs = folder_kwargs  # check subfolder= / gguf_file= / *_file=
        self.allow_none = allow_none  # None means "nothing from disk" (e.g. a model built in code)
        self.only_if = only_if  # guard only these calls (numpy.load with allow_pickle=True)


def _wrap(func: Callable[..., Any], spec: ArgSpec, label: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if spec.only_if is not None and not spec.only_if(args, kwargs):
            return func(*args, **kwargs)
        if len(args) > spec.index:
            value = args[spec.index]
            where: Any = spec.index
        else:
            where = next((n for n in spec.names if n in kwargs), None)
            value = kwargs[where] if where is not None else None
        if value is None and spec.allow_none:
            return func(*args, **kwargs)
        if value is None:
            raise ModelRefused(label, "no path given: only files on disk can be verified before load")
        new = redirect(value, kwargs)
        if spec.folder_kwargs:
            check_inside(new, kwargs)
        if new is not value:
            debug(f"{label}({value}) -> {new}")
        if isinstance(where, int):
            args = (*args[:where], new, *args[where + 1 :])
        else:
            kwargs[where] = new
        return func(*args, **kwargs)

    guarded.__attest_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _allow_pickle(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("allow_pickle", args[2] if len(args) > 2 else False))


_PRETRAINED = ArgSpec(0, ("pretrained_model_name_or_path",), folder_kwargs=True)
_FILE = ArgSpec(0, ("filename", "f", "file", "path"))

# module -> [(attribute path, where the path argument is)]. Classes' methods are patched on the class
# that defines them; subclasses inherit the wrapper.
TARGETS: dict[str, list[tuple[str, ArgSpec]]] = {
    "torch.serialization": [("load", _FILE)],
    "torch": [("load", _FILE)],
    "torch.jit._serialization": [("load", _FILE)],
    "torch.jit": [("load", _FILE)],
    "numpy": [("load", ArgSpec(0, ("file",), only_if=_allow_pickle))],
    "numpy.lib._npyio_impl": [("load", ArgSpec(0, ("file",), only_if=_allow_pickle))],
    "joblib": [("load", _FILE)],
    "joblib.numpy_pickle": [("load", _FILE)],
    "safetensors": [("safe_open", _FILE)],
    **{
        f"safetensors.{fw}": [("load_file", _FILE), ("safe_open", _FILE)]
        for fw in ("torch", "numpy", "flax", "tensorflow", "paddle", "mlx")
    },
    "transformers.modeling_utils": [("PreTrainedModel.from_pretrained", _PRETRAINED)],
    "transformers.configuration_utils": [("PreTrainedConfig.from_pretrained", _PRETRAINED)],
    "transformers.tokenization_utils_base": [("PreTrainedTokenizerBase.from_pretrained", _PRETRAINED)],
    "transformers.processing_utils": [("ProcessorMixin.from_pretrained", _PRETRAINED)],
    "transformers.feature_extraction_utils": [("FeatureExtractionMixin.from_pretrained", _PRETRAINED)],
    "transformers.image_processing_base": [("ImageProcessingMixin.from_pretrained", _PRETRAINED)],
    "transformers.video_processing_utils": [("VideoProcessorMixin.from_pretrained", _PRETRAINED)],
    "transformers.generation.configuration_utils": [("GenerationConfig.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.auto_factory": [("_BaseAutoModelClass.from_pretrained", _PRETRAINED)],
    # each AutoModel* class holds its own copy of _BaseAutoModelClass.from_pretrained
    "transformers.models.auto.modeling_auto": [("*.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.configuration_auto": [("AutoConfig.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.tokenization_auto": [("AutoTokenizer.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.processing_auto": [("AutoProcessor.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.feature_extraction_auto": [
        ("AutoFeatureExtractor.from_pretrained", _PRETRAINED)
    ],
    "transformers.models.auto.image_processing_auto": [("AutoImageProcessor.from_pretrained", _PRETRAINED)],
    "transformers.models.auto.video_processing_auto": [("AutoVideoProcessor.from_pretrained", _PRETRAINED)],
    "transformers.dynamic_module_utils": [
        ("get_class_from_dynamic_module", ArgSpec(1, ("pretrained_model_name_or_path",), folder_kwargs=True)),
        ("get_cached_module_file", ArgSpec(0, ("pretrained_model_name_or_path",), folder_kwargs=True)),
    ],
    "diffusers.pipelines.pipeline_utils": [("DiffusionPipeline.from_pretrained", _PRETRAINED)],
    "diffusers.models.modeling_utils": [("ModelMixin.from_pretrained", _PRETRAINED)],
    "diffusers.configuration_utils": [("ConfigMixin.load_config", _PRETRAINED)],
    "diffusers.schedulers.scheduling_utils": [("SchedulerMixin.from_pretrained", _PRETRAINED)],
    "diffusers.utils.dynamic_modules_utils": [
        ("get_class_from_dynamic_module", ArgSpec(0, ("pretrained_model_name_or_path",), folder_kwargs=True)),
        ("get_cached_module_file", ArgSpec(0, ("pretrained_model_name_or_path",), folder_kwargs=True)),
    ],
    "sentence_transformers.base.model": [
        ("BaseModel.__init__", ArgSpec(1, ("model_name_or_path",), folder_kwargs=True, allow_none=True))
    ],
    **{
        f"sentence_transformers.{kind}.model": [
            (f"{cls}.__init__", ArgSpec(1, ("model_name_or_path",), folder_kwargs=True, allow_none=True))
        ]
        for kind, cls in (
            ("sentence_transformer", "SentenceTransformer"),
            ("cross_encoder", "CrossEncoder"),
            ("sparse_encoder", "SparseEncoder"),
        )
    },
}


def _unwrap(func: Any) -> Any:
    """The original loader behind a guarded wrapper, or behind a copy of one (transformers' Auto
    classes copy ``_BaseAutoModelClass.from_pretrained`` into each class, wrapper included)."""
    while getattr(func, "__attest_guarded__", False) and getattr(func, "__wrapped__", None) is not None:
        func = func.__wrapped__
    return func


def _patch_every_class(module: types.ModuleType, name: str, spec: ArgSpec) -> None:
    """``*.from_pretrained``: every class defined in ``module`` with its own ``name``."""
    for cls in list(vars(module).values()):
        if not isinstance(cls, type) or cls.__module__ != module.__name__ or name not in vars(cls):
            continue
        stored = vars(cls)[name]
        func = stored.__func__ if isinstance(stored, (classmethod, staticmethod)) else stored
        if getattr(func, "__attest_guarded__", False):
            # a copy of a wrapper, made while the guard was installed: remember how to undo it
            original = (
                type(stored)(_unwrap(func))
                if isinstance(stored, (classmethod, staticmethod))
                else _unwrap(func)
            )
            STATE.patched.setdefault((id(cls), name), (cls, name, original, stored))
            continue
        _patch_attribute(module, f"{cls.__name__}.{name}", spec, False)


def _patch_attribute(module: types.ModuleType, dotted: str, spec: ArgSpec, rebind: bool) -> None:
    if dotted.startswith("*."):
        _patch_every_class(module, dotted[2:], spec)
        return
    owner: Any = module
    *path, name = dotted.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return
    if isinstance(owner, type):
        if name not in vars(owner):
            return  # inherited: the class that defines it is patched
        stored = vars(owner)[name]
    else:
        stored = getattr(owner, name, None)
        if stored is None:
            return
    key = (id(owner), name)
    if key in STATE.patched or getattr(stored, "__attest_guarded__", False):
        return
    label = f"{module.__name__}.{dotted}"
    replacement: Any
    if isinstance(stored, classmethod):
        # The spec's index counts after cls: classmethods are wrapped on their function, with cls first.
        shifted = ArgSpec(
            spec.index + 1,
            spec.names,
            folder_kwargs=spec.folder_kwargs,
            allow_none=spec.allow_none,
            only_if=spec.only_if,
        )
        replacement = classmethod(_wrap(stored.__func__, shifted, label))
    elif isinstance(stored, staticmethod):
        replacement = staticmethod(_wrap(stored.__func__, spec, label))
    elif callable(stored):
        replacement = _wrap(stored, spec, label)
    else:
        return
    setattr(owner, name, replacement)
    STATE.patched[key] = (owner, name, stored, replacement)
    if rebind and not isinstance(owner, type):
        _rebind(stored, replacement, name)
    debug(f"patched {label}")


def _rebind(original: Any, replacement: Any, name: str) -> None:
    """Modules that imported the original by name (``from torch.serialization import load``) before it
    was patched get the wrapper too."""
    for mod in list(sys.modules.values()):
        namespace = getattr(mod, "__dict__", None)
        if isinstance(namespace, dict):
            for attr in (name, *[k for k, v in namespace.items() if v is original and k != name]):
                if namespace.get(attr) is original:
                    namespace[attr] = replacement


def patch_module(module: types.ModuleType, rebind: bool = False) -> None:
    """Wrap a target module's loaders; ``rebind`` also fixes references other modules already hold."""
    for dotted, spec in TARGETS.get(module.__name__, ()):
        _patch_attribute(module, dotted, spec, rebind)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a target module the moment it has executed, before its importer gets it back."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in TARGETS or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        inner = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            inner(module)
            patch_module(module)

        try:
            spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this loader instance only
        except (AttributeError, TypeError):
            spec.loader = _DelegatingLoader(spec.loader, exec_module)
        return spec


class _DelegatingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, exec_module: Callable[[types.ModuleType], None]) -> None:
        self._inner = inner
        self._exec = exec_module

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._exec(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_hooks(verifier: Verifier, spec: dict[str, Any] | None = None) -> None:
    """Put the wrappers in place: now for imported modules, on import for the rest. Idempotent."""
    with STATE.lock:
        STATE.verifier = verifier
        STATE.spec = spec
        if STATE.finder is None:
            STATE.finder = _PatchOnImport()
            sys.meta_path.insert(0, STATE.finder)
        for name in list(TARGETS):
            module = sys.modules.get(name)
            if module is not None:
                patch_module(module, rebind=True)
        _patch_multiprocessing()


def uninstall_hooks() -> None:
    """Restore every patched loader and stop patching on import (snapshots stay until exit)."""
    with STATE.lock:
        if STATE.finder is not None and STATE.finder in sys.meta_path:
            sys.meta_path.remove(STATE.finder)
        STATE.finder = None
        for owner, name, original, replacement in STATE.patched.values():
            setattr(owner, name, original)
            if not isinstance(owner, type):
                _rebind(replacement, original, name)
        STATE.patched.clear()
        STATE.verifier = None
        STATE.spec = None
        STATE.snapshots.clear()
        STATE.roots.clear()


# --------------------------------------------------------------------------------------------------
# Python command lines

PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[tmd]*$")
_FLAGS = set("bBdEhiIOPqsSuvVx")  # interpreter options without a value
_VALUED = set("WX")  # options with a value (attached or next argument)
_NO_CODE = ("-h", "--help", "-V", "--version", "--help-env", "--help-xoptions", "--help-all")


def split_python_argv(argv: Sequence[str]) -> tuple[list[str], str, str, list[str]]:
    """Split a Python command line (after the interpreter) as CPython does: (interpreter options,
    kind, target, program arguments); kind is script, module, code, or none (``--version``: no
    program). ValueError for what cannot be guarded: no program (interactive, standard input)."""
    argv = list(argv)
    options: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _NO_CODE:
            return [*options, *argv[i:]], "none", "", []
        if arg == "-" or not arg.startswith("-") or arg == "--":
            if arg == "--":
                i += 1
            if i >= len(argv) or argv[i] == "-":
                break
            return options, "script", argv[i], argv[i + 1 :]
        if arg.startswith("--"):
            if arg == "--check-hash-based-pycs" and i + 1 < len(argv):
                options += argv[i : i + 2]
                i += 2
                continue
            raise ValueError(f"{arg}: interpreter option not understood by the guard")
        j = 1
        while j < len(arg):
            ch = arg[j]
            if ch in "cm":
                value = arg[j + 1 :] or (argv[i + 1] if i + 1 < len(argv) else None)
                if value is None:
                    raise ValueError(f"-{ch} needs an argument")
                rest = argv[i + 1 :] if arg[j + 1 :] else argv[i + 2 :]
                return options, ("code" if ch == "c" else "module"), value, rest
            if ch in _VALUED:
                value = arg[j + 1 :] or (argv[i + 1] if i + 1 < len(argv) else None)
                if value is None:
                    raise ValueError(f"-{ch} needs an argument")
                options += [f"-{ch}", value]
                if not arg[j + 1 :]:
                    i += 1
                break
            if ch not in _FLAGS:
                raise ValueError(f"-{ch}: interpreter option not understood by the guard")
            options.append(f"-{ch}")
            j += 1
        i += 1
    raise ValueError(
        "attest run needs a script, -m MODULE or -c CODE: an interactive interpreter or a program on "
        "standard input cannot be guarded"
    )


# --------------------------------------------------------------------------------------------------
# Child processes


def child_prelude(spec_path: str) -> str:
    """Python source a child interpreter runs first: load these hooks by path and install them from
    the spec file, or exit with status 3 before the child's own code."""
    hooks_file = os.path.abspath(__file__)
    return (
        "import importlib.util as _u, sys as _s\n"
        f"_m = _s.modules.get({MODULE_NAME!r})\n"
        "if _m is None:\n"
        f"    _p = _u.spec_from_file_location({MODULE_NAME!r}, {hooks_file!r})\n"
        "    _m = _u.module_from_spec(_p)\n"
        f"    _s.modules[{MODULE_NAME!r}] = _m\n"
        "    _p.loader.exec_module(_m)\n"
        f"_m.install_from_spec_file({spec_path!r})\n"
        "del _u, _s, _m\n"
    )


def _patch_multiprocessing() -> None:
    """spawn and forkserver start children with ``python -c CODE``: prepend the prelude to CODE.
    (fork children are copies of this process and keep the guard.)"""
    try:
        from multiprocessing import util
    except ImportError:  # pragma: no cover - a Python without multiprocessing
        return
    original = util.spawnv_passfds
    if getattr(original, "__attest_guarded__", False):
        return

    @functools.wraps(original)
    def spawnv_passfds(path: Any, args: Sequence[Any], passfds: Any) -> Any:
        spec_path = os.environ.get(SPEC_ENV)
        args = list(args)
        if spec_path and STATE.verifier is not None and "-c" in args:
            i = args.index("-c")
            if i + 1 < len(args):
                args[i + 1] = child_prelude(spec_path) + args[i + 1]
                debug("multiprocessing child: guard prelude added")
        return original(path, args, passfds)

    spawnv_passfds.__attest_guarded__ = True  # type: ignore[attr-defined]
    util.spawnv_passfds = spawnv_passfds
    STATE.patched[(id(util), "spawnv_passfds")] = (util, "spawnv_passfds", original, spawnv_passfds)


_BYPASS = threading.local()  # set while the guard starts its own verifier


def guard_child_argv(args: Any, env: Any, shell: Any) -> Any:
    """A Python child that would skip ``sitecustomize`` (``-I``, ``-E``, ``-S``, or an environment
    without the guard's) is started through ``boot.py`` instead, so it is guarded like its parent."""
    spec, spec_path = STATE.spec, os.environ.get(SPEC_ENV)
    if shell or isinstance(args, (str, bytes)) or not spec or not spec_path or getattr(_BYPASS, "on", False):
        return args
    if spec.get("mode") != "attest-run":
        return args
    try:
        argv = [os.fsdecode(a) if isinstance(a, bytes) else os.fspath(a) for a in args]
    except TypeError:
        return args
    if not argv or not PYTHON_NAME.match(os.path.basename(argv[0])):
        return args
    try:
        options, kind, target, rest = split_python_argv(argv[1:])
    except ValueError:
        return args
    child_env = os.environ if env is None else env
    site = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
    covered = kind == "none" or (
        not {"-I", "-E", "-S"} & set(options)
        and child_env.get(SPEC_ENV)
        and site in str(child_env.get("PYTHONPATH", "")).split(os.pathsep)
    )
    if covered:
        return args
    child_spec = dict(spec, kind=kind, target=target)
    fd, path = tempfile.mkstemp(prefix="child-", suffix=".json", dir=spec["run_dir"])
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(child_spec, f)
    boot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot.py")
    debug(f"python child {argv[:3]}...: started through the guard's bootstrap")
    return [argv[0], *options, boot, path, *rest]


def _patch_subprocess() -> None:
    original = subprocess.Popen.__init__
    if getattr(original, "__attest_guarded__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, args: Any, *more: Any, **kwargs: Any) -> None:
        args = guard_child_argv(args, kwargs.get("env"), kwargs.get("shell"))
        original(self, args, *more, **kwargs)

    __init__.__attest_guarded__ = True  # type: ignore[attr-defined]
    subprocess.Popen.__init__ = __init__  # type: ignore[method-assign]
    STATE.patched[(id(subprocess.Popen), "__init__")] = (subprocess.Popen, "__init__", original, __init__)


# --------------------------------------------------------------------------------------------------
# Running under `attest run`: verification in attest's own interpreter


def subprocess_verifier(spec: dict[str, Any]) -> Verifier:
    """Verify by running ``<attest's python> -m attest.guard --snapshot FOLDER``: the snapshot is made
    and verified by attest's own code, whatever interpreter this program runs on."""

    def verify(source: Path) -> tuple[Path, str]:
        cmd = [
            spec["attest_python"],
            "-m",
            "attest.guard",
            "--snapshot",
            str(source),
            "--into",
            spec["run_dir"],
        ]
        env = dict(spec["verifier_env"])
        _BYPASS.on = True  # the verifier runs in attest's own interpreter, not under the guard
        try:
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, timeout=spec.get("timeout", 3600))
        except (OSError, subprocess.SubprocessError) as exc:
            raise ModelRefused(source, f"cannot run the verifier: {exc}") from None
        finally:
            _BYPASS.on = False
        try:
            answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            answer = {}
        if done.returncode == 0 and answer.get("ok") and answer.get("snapshot"):
            snapshot = Path(answer["snapshot"])
            hold(snapshot.parent)
            atexit.register(shutil.rmtree, snapshot.parent, True)
            return snapshot, str(answer.get("summary", ""))
        raise ModelRefused(source, answer.get("reason") or f"the verifier failed (exit {done.returncode})")

    return verify


def install_from_spec(spec: dict[str, Any], spec_path: str) -> None:
    """Install the guard as ``attest run`` configured it (spec file written by ``cli/run.py``)."""
    os.environ[SPEC_ENV] = spec_path
    if spec.get("debug"):
        os.environ[DEBUG_ENV] = "1"
    install_hooks(subprocess_verifier(spec), spec)
    _patch_subprocess()
    _install_excepthook()


def install_from_spec_file(spec_path: str) -> None:
    """A child process's entry (sitecustomize or multiprocessing prelude): install or exit 3."""
    try:
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
        if spec.get("mode") == "in-process":
            import attest.guard  # the parent used attest.guard.install(): same interpreter

            attest.guard.install(policy=spec["policy"], registry=spec.get("registry"))
        else:
            install_from_spec(spec, spec_path)
    except Exception as exc:  # fail closed: never run a child unguarded
        print(f"attest: cannot protect this process, not starting it: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_CANNOT_PROTECT)


def _install_excepthook() -> None:
    """An uncaught refusal is the guard working, not a crash: one line on stderr, exit status 1."""
    previous = sys.excepthook
    if getattr(previous, "__attest_guarded__", False):
        return

    def hook(kind: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ModelRefused):
            print(f"attest: {value}", file=sys.stderr, flush=True)
        else:
            previous(kind, value, tb)

    hook.__attest_guarded__ = True  # type: ignore[attr-defined]
    sys.excepthook = hook
