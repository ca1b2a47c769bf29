"""The model manifest and the model digest (DESIGN.md, "Model identity").

model digest = sha256(JCS({"hashAlgorithm": "sha256", "files": [{"path", "size", "digest"}, ...]}))
with files sorted by the UTF-8 bytes of their path. Unlike the OpenSSF model-signing root, names and
sizes are bound, so renaming a file or moving bytes between files changes the digest.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from attest._internal.walk import DEFAULT_IGNORES, walk_model
from attest.errors import SchemaError
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
) -> Manifest:
    """Walk and hash a model folder (or single file). ``progress=True`` shows a bar on a terminal."""
    walked = walk_model(Path(path), tuple(ignores))
    with _progress_bar(sum(w.size for w in walked), progress) as tick:
        digests = sha256_files([w.real_path for w in walked], workers=workers, progress=tick)
    files = tuple(FileEntry(w.rel_path, w.size, d) for w, d in zip(walked, digests, strict=True))
    return Manifest(files=files, ignores=tuple(ignores))


@contextmanager
def _progress_bar(total: int, progress: bool | ProgressCallback) -> Iterator[ProgressCallback | None]:
    if callable(progress):
        yield progress
        return
    if not progress or not sys.stderr.isatty() or total < 64 * 1024 * 1024:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress("hashing", *columns, transient=True) as bar:
        task = bar.add_task("hashing", total=total)
        yield lambda n: bar.advance(task, n)


def manifest_from_json(files: Iterable[dict[str, Any]], ignores: Iterable[str]) -> Manifest:
    """Rebuild a manifest from a signed predicate, refusing paths a verifier must never open."""
    entries = []
    for f in files:
        p = f["path"]
        parts = p.split("/")
        if p.startswith("/") or any(seg in ("", ".", "..") for seg in parts) or "\\" in p:
            raise SchemaError(f"signed manifest holds an unsafe path: {p!r}")
        entries.append(FileEntry(p, int(f["size"]), str(f["digest"])))
    return Manifest(files=tuple(sorted(entries, key=lambda e: sort_key(e.path))), ignores=tuple(ignores))


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
