"""Enumerate the regular files of a model folder, refusing anything that could smuggle content in.

Why so strict: the manifest promises "these names, these bytes, nothing else". A symlink that leaves
the folder, a device file, a name that is not UTF-8, or two names that collide on a case-insensitive or
normalising file system would each let the bytes a loader reads differ from the bytes that were hashed.
Hugging Face cache snapshots are the one sanctioned use of symlinks: files under
``models--org--name/snapshots/<rev>/`` link into that repository's own ``blobs/``.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pathspec

from attest.errors import ModelPathError, UsageError

# Ignored by default: VCS metadata, the hub client's local bookkeeping, and attestation bundles
# themselves (a bundle cannot sign its own bytes).
DEFAULT_IGNORES: tuple[str, ...] = (".git/", ".cache/huggingface/", "*.sigstore.json")


@dataclass(frozen=True)
class WalkedFile:
    """A regular file found under the model root."""

    rel_path: str  # POSIX, relative to the root, exactly as stored on disk
    real_path: Path  # where the bytes are read from (differs from root/rel_path for HF cache links)
    size: int


# Limits on a relative path, applied when signing (walk) and to every signed manifest a verifier or
# ``attest pull`` reads: beyond them a path cannot be created portably (NAME_MAX 255 bytes per
# segment, PATH_MAX 4096), and a hostile manifest must not make a consumer build 2,000-deep trees.
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_PATH_SEGMENTS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(rel_path: str) -> str | None:
    """Why ``rel_path`` may not appear in a manifest, or ``None`` when it may.

    Refused: absolute paths, empty, ``.`` or ``..`` segments, backslashes, control characters (NUL,
    newline, escape: they forge lines in logs and terminals), and paths over the limits above.
    """
    if not rel_path or rel_path.startswith("/"):
        return "not a relative path"
    if "\\" in rel_path:
        return "holds a backslash"
    if _CONTROL.search(rel_path):
        return "holds a control character"
    parts = rel_path.split("/")
    if any(seg in ("", ".", "..") for seg in parts):
        return "holds an empty, '.' or '..' segment"
    if len(parts) > MAX_PATH_SEGMENTS:
        return f"is {len(parts)} segments deep (limit {MAX_PATH_SEGMENTS})"
    if len(rel_path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    if any(len(seg.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for seg in parts):
        return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


@functools.lru_cache(maxsize=64)
def compile_ignores(ignores: tuple[str, ...]) -> pathspec.PathSpec:
    """The ignore patterns as one spec: gitignore syntax ("gitwildmatch"), as implemented by
    ``pathspec`` 1.1.1's ``gitignore`` pattern (``GitIgnoreBasicPattern``).

    Raises ``ValueError`` for a pattern gitwildmatch cannot parse.
    """
    try:
        return pathspec.PathSpec.from_lines("gitignore", ignores)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid ignore pattern: {exc}") from None


def is_ignored(rel_path: str, ignores: tuple[str, ...] | list[str], is_dir: bool = False) -> bool:
    """Whether gitwildmatch ``ignores`` exclude ``rel_path`` (a directory is tested as ``path/``).

    The semantics are gitignore's, through ``pathspec``'s ``gitignore`` patterns (see
    ``schemas/vectors/ignore-patterns.json``): ``*`` never crosses ``/``; a pattern with a ``/`` at the
    start or in the middle is anchored at the model root; any other pattern matches at any depth; a
    trailing ``/`` matches directories only; ``**`` spans folders; ``!`` re-includes, last match wins.
    The walk does not enter an ignored directory, so nothing below it can be re-included (as in git).
    """
    return compile_ignores(tuple(ignores)).match_file(rel_path + "/" if is_dir else rel_path)


def _hf_blobs_dir(root: Path) -> Path | None:
    """The ``blobs/`` folder a Hugging Face cache snapshot may link into, if root is a snapshot."""
    if root.parent.name == "snapshots" and root.parent.parent.name.startswith("models--"):
        return root.parent.parent / "blobs"
    return None


def _decode_name(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", errors="backslashreplace")
        raise ModelPathError(f"{where}{shown}: file name is not valid UTF-8") from None


def resolve_path(path: Path, rel: str) -> Path:
    """``path.resolve()``, with a symlink loop or an unreadable link as a one-line ``ModelPathError``."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError for a loop
        reason = "symlink loop" if isinstance(exc, RuntimeError) else (exc.strerror or str(exc))
        raise ModelPathError(f"{rel}: cannot resolve: {reason}") from None


def walk_model(
    root: Path,
    ignores: tuple[str, ...] | list[str] = DEFAULT_IGNORES,
    ignored_out: list[str] | None = None,
) -> list[WalkedFile]:
    """Return the model's regular files sorted by the UTF-8 bytes of their relative paths.

    A single file is a model of one file whose path is its own name. When ``ignored_out`` is given,
    the paths left out by ``ignores`` are appended to it (an ignored folder as ``path/``, not entered),
    so a verifier can say what lies on disk without being covered by the signature.
    """
    root = Path(root)
    try:
        spec = compile_ignores(tuple(ignores))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        st = root.lstat()
    except FileNotFoundError:
        raise ModelPathError(f"{root}: no such file or directory") from None
    except OSError as exc:
        raise ModelPathError(f"{root}: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return [WalkedFile(root.name, root, st.st_size)]
    if stat.S_ISLNK(st.st_mode):
        target = resolve_path(root, str(root))
        if target.is_file():
            return [WalkedFile(root.name, target, target.stat().st_size)]
        root = target
    if not root.is_dir():
        raise ModelPathError(f"{root}: not a regular file or directory")

    real_root = resolve_path(root, str(root))
    blobs = _hf_blobs_dir(real_root)
    found: list[WalkedFile] = []
    seen_folded: dict[str, str] = {}
    stack: list[tuple[bytes, str]] = [(os.fsencode(real_root), "")]
    while stack:
        dir_bytes, rel_dir = stack.pop()
        try:
            with os.scandir(dir_bytes) as it:
                entries = list(it)
        except OSError as exc:
            raise ModelPathError(f"{rel_dir or root}: cannot list folder: {exc.strerror or exc}") from None
        for entry in entries:
            name = _decode_name(entry.name, f"{rel_dir}/" if rel_dir else "")
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if name in (".", "..") or "/" in name:  # defensive: scandir never yields these
                raise ModelPathError(f"{rel}: invalid path segment")
            st_entry = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st_entry.st_mode):
                if not spec.match_file(rel + "/"):
                    stack.append((entry.path, rel))
                elif ignored_out is not None:
                    ignored_out.append(rel + "/")
                continue
            if spec.match_file(rel):
                if ignored_out is not None:
                    ignored_out.append(rel)
                continue
            problem = path_problem(rel)
            if problem:
                raise ModelPathError(f"{rel!r}: file path {problem}")
            real, size = _resolve_file(entry.path, rel, st_entry, real_root, blobs)
            folded = unicodedata.normalize("NFC", rel).casefold()
            if folded in seen_folded:
                raise ModelPathError(
                    f"{rel}: collides with {seen_folded[folded]} up to case or Unicode normalisation"
                )
            seen_folded[folded] = rel
            found.append(WalkedFile(rel, real, size))
    found.sort(key=lambda f: f.rel_path.encode("utf-8"))
    if ignored_out is not None:
        ignored_out.sort(key=lambda p: p.encode("utf-8"))
    return found


def _resolve_file(
    path: bytes, rel: str, st: os.stat_result, real_root: Path, blobs: Path | None
) -> tuple[Path, int]:
    """Return where to read a directory entry's bytes from, refusing special files and escapes."""
    if stat.S_ISREG(st.st_mode):
        return Path(os.fsdecode(path)), st.st_size
    if not stat.S_ISLNK(st.st_mode):
        raise ModelPathError(f"{rel}: not a regular file (device, socket or FIFO)")
    target = resolve_path(Path(os.fsdecode(path)), rel)
    allowed = target.is_relative_to(real_root) or (blobs is not None and target.is_relative_to(blobs))
    if not allowed:
        raise ModelPathError(f"{rel}: symlink resolves outside the model folder ({target})")
    try:
        target_st = target.stat()
    except FileNotFoundError:
        raise ModelPathError(f"{rel}: dangling symlink") from None
    if not stat.S_ISREG(target_st.st_mode):
        raise ModelPathError(f"{rel}: symlink to something that is not a regular file")
    return target, target_st.st_size
