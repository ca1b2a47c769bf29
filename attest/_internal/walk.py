"""Enumerate the regular files of a model folder, refusing anything that could smuggle content in.

Why so strict: the manifest promises "these names, these bytes, nothing else". A symlink that leaves
the folder, a device file, a name that is not UTF-8, or two names that collide on a case-insensitive or
normalising file system would each let the bytes a loader reads differ from the bytes that were hashed.
Hugging Face cache snapshots are the one sanctioned use of symlinks: files under
``models--org--name/snapshots/<rev>/`` link into that repository's own ``blobs/``.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from attest.errors import ModelPathError

# Ignored by default: VCS metadata, the hub client's local bookkeeping, and attestation bundles
# themselves (a bundle cannot sign its own bytes).
DEFAULT_IGNORES: tuple[str, ...] = (".git/", ".cache/huggingface/", "*.sigstore.json")


@dataclass(frozen=True)
class WalkedFile:
    """A regular file found under the model root."""

    rel_path: str  # POSIX, relative to the root, exactly as stored on disk
    real_path: Path  # where the bytes are read from (differs from root/rel_path for HF cache links)
    size: int


def is_ignored(rel_path: str, ignores: tuple[str, ...] | list[str], is_dir: bool = False) -> bool:
    """Match a relative path against ignore patterns, with gitignore's basic rules.

    A trailing ``/`` restricts a pattern to directories; a pattern holding another ``/`` (leading or
    inside) is a glob anchored at the root and matched against the whole relative path; any other
    pattern is a glob on the last path component, at any depth.
    """
    name = rel_path.rsplit("/", 1)[-1]
    for pattern in ignores:
        dir_only = pattern.endswith("/")
        body = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if "/" in body:
            if fnmatchcase(rel_path, body.lstrip("/")):
                return True
        elif fnmatchcase(name, body):
            return True
    return False


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


def walk_model(root: Path, ignores: tuple[str, ...] | list[str] = DEFAULT_IGNORES) -> list[WalkedFile]:
    """Return the model's regular files sorted by the UTF-8 bytes of their relative paths.

    A single file is a model of one file whose path is its own name.
    """
    root = Path(root)
    try:
        st = root.lstat()
    except FileNotFoundError:
        raise ModelPathError(f"{root}: no such file or directory") from None
    if stat.S_ISREG(st.st_mode):
        return [WalkedFile(root.name, root, st.st_size)]
    if stat.S_ISLNK(st.st_mode):
        target = root.resolve()
        if target.is_file():
            return [WalkedFile(root.name, target, target.stat().st_size)]
        root = target
    if not root.is_dir():
        raise ModelPathError(f"{root}: not a regular file or directory")

    real_root = root.resolve()
    blobs = _hf_blobs_dir(real_root)
    found: list[WalkedFile] = []
    seen_folded: dict[str, str] = {}
    stack: list[tuple[bytes, str]] = [(os.fsencode(real_root), "")]
    while stack:
        dir_bytes, rel_dir = stack.pop()
        with os.scandir(dir_bytes) as entries:
            for entry in entries:
                name = _decode_name(entry.name, f"{rel_dir}/" if rel_dir else "")
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if name in (".", "..") or "/" in name:  # defensive: scandir never yields these
                    raise ModelPathError(f"{rel}: invalid path segment")
                st_entry = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st_entry.st_mode):
                    if not is_ignored(rel, ignores, is_dir=True):
                        stack.append((entry.path, rel))
                    continue
                if is_ignored(rel, ignores):
                    continue
                real, size = _resolve_file(entry.path, rel, st_entry, real_root, blobs)
                folded = unicodedata.normalize("NFC", rel).casefold()
                if folded in seen_folded:
                    raise ModelPathError(
                        f"{rel}: collides with {seen_folded[folded]} up to case or Unicode normalisation"
                    )
                seen_folded[folded] = rel
                found.append(WalkedFile(rel, real, size))
    found.sort(key=lambda f: f.rel_path.encode("utf-8"))
    return found


def _resolve_file(
    path: bytes, rel: str, st: os.stat_result, real_root: Path, blobs: Path | None
) -> tuple[Path, int]:
    """Return where to read a directory entry's bytes from, refusing special files and escapes."""
    if stat.S_ISREG(st.st_mode):
        return Path(os.fsdecode(path)), st.st_size
    if not stat.S_ISLNK(st.st_mode):
        raise ModelPathError(f"{rel}: not a regular file (device, socket or FIFO)")
    target = Path(os.fsdecode(path)).resolve()
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
