"""The model manifest and the model digest (DESIGN.md, "Model identity").

model digest = sha256(JCS({"hashAlgorithm": "sha256", "files": [{"path", "size", "digest"}, ...]}))
with files sorted by the UTF-8 bytes of their path. Unlike the OpenSSF model-signing root, names and
sizes are bound, so renaming a file or moving bytes between files changes the digest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from attest._internal.walk import DEFAULT_IGNORES, compile_ignores, path_problem, walk_model
from attest.errors import SchemaError, UsageError
from attest.hashing import ProgressCallback, sha256_files

HASH_ALGORITHM = "sha256"


@dataclass(frozen=True)
class FileEntry:
    """One regular file of a model: relative POSIX path, size in bytes, lowercase hex sha256."""

    path: str
    size: int
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class Manifest:
    """Every file of a model, and the ignore patterns that were applied to find them."""

    files: tuple[FileEntry, ...]
    ignores: tuple[str, ...] = field(default=DEFAULT_IGNORES)
    # The signer allowed ignore patterns that leave out weights, configs, tokenizers or code
    # (``attest sign --allow-ignore-loadable``); recorded in the signed predicate.
    allow_ignore_loadable: bool = False
    # Paths on disk left out by non-default ignore patterns (folders as ``path/``): not part of the
    # model's identity, reported by the verifier because nothing vouches for them.
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @property
    def digest_hex(self) -> str:
        return model_digest_hex(self.files)

    @property
    def digest(self) -> str:
        """The model digest, written ``sha256:<hex>``."""
        return f"sha256:{self.digest_hex}"

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    def to_json(self) -> dict[str, Any]:
        return {
            "hashAlgorithm": HASH_ALGORITHM,
            "files": [f.to_json() for f in self.files],
            "ignores": list(self.ignores),
            **({"allowIgnoreLoadable": True} if self.allow_ignore_loadable else {}),
            "digest": self.digest,
        }


def sort_key(path: str) -> bytes:
    """Paths sort by their UTF-8 bytes, never by locale or code points of surrogates."""
    return path.encode("utf-8")


def digest_document(files: Iterable[FileEntry]) -> dict[str, Any]:
    """The JSON object whose RFC 8785 form is hashed into the model digest."""
    ordered = sorted(files, key=lambda f: sort_key(f.path))
    return {"hashAlgorithm": HASH_ALGORITHM, "files": [f.to_json() for f in ordered]}


def model_digest_hex(files: Iterable[FileEntry]) -> str:
    return hashlib.sha256(rfc8785.dumps(digest_document(files))).hexdigest()


def compute_manifest(
    path: Path | str,
    ignores: Sequence[str] = DEFAULT_IGNORES,
    progress: bool | ProgressCallback = False,
    workers: int | None = None,
    allow_ignore_loadable: bool = False,
) -> Manifest:
    """Walk and hash a model folder (or single file). ``progress=True`` shows a bar on a terminal.

    Signers should call ``check_ignores`` first: this function hashes whatever ``ignores`` leave.
    """
    left_out: list[str] = []
    walked = walk_model(Path(path), tuple(ignores), ignored_out=left_out)
    defaults = compile_ignores(DEFAULT_IGNORES)
    ignored = tuple(p for p in left_out if not defaults.match_file(p))
    with progress_bar(sum(w.size for w in walked), progress) as tick:
        digests = sha256_files([w.real_path for w in walked], workers=workers, progress=tick)
    files = tuple(FileEntry(w.rel_path, w.size, d) for w, d in zip(walked, digests, strict=True))
    return Manifest(files, tuple(ignores), allow_ignore_loadable, ignored)


# What a loader reads (transformers, safetensors, torch, llama.cpp, ONNX, TF/Keras, Flax, tokenizers,
# remote code): an ignore pattern that leaves any of these out lets unsigned bytes be loaded.
LOADABLE_SUFFIXES: dict[str, str] = {
    **dict.fromkeys(
        (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".ggml", ".onnx", ".h5", ".hdf5",
         ".keras", ".msgpack", ".pkl", ".pickle", ".joblib", ".npz", ".npy", ".tflite", ".mlmodel",
         ".pb", ".nemo", ".llamafile"),
        "weights",
    ),
    **dict.fromkeys((".py", ".pyc", ".so", ".jinja", ".jinja2"), "code"),
    **dict.fromkeys((".json", ".yaml", ".yml"), "config"),
    **dict.fromkeys((".model", ".tiktoken", ".spm", ".vocab"), "tokenizer"),
}  # fmt: skip
LOADABLE_NAMES = ("tokenizer*", "vocab*", "merges*", "*config*", "chat_template*", "added_tokens*")
# Representative paths, at the root and one folder down, that a pattern is tried against: refusing
# on these catches a pattern such as ``*.bin`` even when the folder holds no .bin file today.
LOADABLE_PROBES = tuple(
    prefix + name
    for prefix in ("", "sub/")
    for name in (
        "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
        "pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "model.gguf", "model.onnx",
        "tf_model.h5", "flax_model.msgpack", "adapter_model.safetensors", "config.json",
        "generation_config.json", "adapter_config.json", "preprocessor_config.json", "tokenizer.json",
        "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "vocab.txt", "merges.txt",
        "modeling_custom.py", "chat_template.jinja",
    )
)  # fmt: skip


def loadable_kind(rel_path: str) -> str | None:
    """``weights``, ``code``, ``config`` or ``tokenizer`` when a loader may read ``rel_path``, else None."""
    name = rel_path.rsplit("/", 1)[-1].lower()
    for suffix, kind in LOADABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in LOADABLE_NAMES):
        return "tokenizer" if name.startswith(("tokenizer", "vocab", "merges", "added_tokens")) else "config"
    return None


def check_ignores(path: Path | str, ignores: Sequence[str], allow_loadable: bool = False) -> None:
    """Refuse extra ignore patterns that would leave out what a loader reads, unless allowed.

    Two tests, so that neither today's folder nor a later one slips through: the patterns are tried
    against ``LOADABLE_PROBES`` (``*.bin``, ``tokenizer*``, ``*`` are refused anywhere), and the
    folder is walked with and without them so that e.g. ``weights/`` holding safetensors is refused.
    Raises ``UsageError`` naming the files; ``allow_loadable`` (recorded in the manifest by the
    caller) skips the refusal.
    """
    extra = tuple(p for p in ignores if p not in DEFAULT_IGNORES)
    if not extra or allow_loadable:
        return
    try:
        spec = compile_ignores(DEFAULT_IGNORES + extra)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    defaults = compile_ignores(DEFAULT_IGNORES)
    hidden = [p for p in LOADABLE_PROBES if spec.match_file(p) and not defaults.match_file(p)]
    root = Path(path)
    if not hidden:
        kept = {w.rel_path for w in walk_model(root, DEFAULT_IGNORES + extra)}
        hidden = [w.rel_path for w in walk_model(root, DEFAULT_IGNORES) if w.rel_path not in kept]
        hidden = [p for p in hidden if loadable_kind(p)]
    if hidden:
        shown = ", ".join(f"{p} ({loadable_kind(p)})" for p in hidden[:3])
        more = f" and {len(hidden) - 3} more" if len(hidden) > 3 else ""
        raise UsageError(
            f"--ignore {' '.join(extra)!r} would leave out files a loader reads: {shown}{more}; "
            "pass --allow-ignore-loadable to sign anyway (recorded in the signed manifest)"
        )


@contextmanager
def progress_bar(
    total: int,
    progress: bool | ProgressCallback,
    label: str = "hashing",
    min_total: int = 64 * 1024 * 1024,
) -> Iterator[ProgressCallback | None]:
    """A byte-counting callback: the caller's own, or a rich bar on stderr when ``progress`` is True,
    stderr is a terminal and there are at least ``min_total`` bytes; otherwise ``None``."""
    if callable(progress):
        yield progress
        return
    if not progress or not sys.stderr.isatty() or total < min_total:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    # On stderr, the stream that was checked: stdout may carry --json output or be a pipe.
    with Progress(label, *columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def manifest_from_json(files: Iterable[dict[str, Any]], ignores: Iterable[str]) -> Manifest:
    """Rebuild a manifest from a signed predicate, refusing paths a verifier must never open.

    A signature proves who wrote a manifest, not that it is sane: a path with a NUL, ``..``, a
    control character or 2,000 segments, the same path twice, or ``a`` beside ``a/b`` (a file that
    would have to be a folder) cannot describe a real model and is refused before any file is opened.
    """
    entries = []
    for f in files:
        p = f["path"]
        problem = path_problem(p) if isinstance(p, str) else "is not a string"
        if problem:
            raise SchemaError(f"signed manifest holds an unsafe path {p!r:.80}: it {problem}")
        entries.append(FileEntry(p, int(f["size"]), str(f["digest"])))
    entries.sort(key=lambda e: sort_key(e.path))
    paths = {e.path for e in entries}
    if len(paths) != len(entries):
        dup = next(e.path for i, e in enumerate(entries) if i and entries[i - 1].path == e.path)
        raise SchemaError(f"signed manifest lists {dup!r} twice")
    for e in entries:
        parts = e.path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in paths:
                raise SchemaError(f"signed manifest lists {prefix!r} as a file and as a folder of {e.path!r}")
    patterns = tuple(ignores)
    try:
        compile_ignores(patterns)
    except ValueError as exc:
        raise SchemaError(f"signed manifest: {exc}") from None
    return Manifest(files=tuple(entries), ignores=patterns)


@dataclass(frozen=True)
class ManifestDiff:
    """How the files on disk differ from a signed manifest."""

    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def describe(self) -> str:
        parts = []
        for label, paths in (("changed", self.changed), ("missing", self.missing), ("extra", self.extra)):
            if paths:
                parts.append(f"{label}: {', '.join(paths)}")
        return "; ".join(parts) or "identical"


def diff_manifests(signed: Manifest, actual: Manifest) -> ManifestDiff:
    s, a = signed.by_path(), actual.by_path()
    changed = [p for p in s if p in a and (s[p].digest, s[p].size) != (a[p].digest, a[p].size)]
    missing = [p for p in s if p not in a]
    extra = [p for p in a if p not in s]
    return ManifestDiff(tuple(changed), tuple(missing), tuple(extra))
