"""Parallel, streaming SHA-256 of many files with bounded memory.

Files are hashed concurrently by threads: ``hashlib`` releases the GIL while it digests a large buffer,
so N threads reach N cores' worth of OpenSSL SHA-256 throughput.

Two ways to get the bytes to OpenSSL:

* ``read`` (the library default): each worker reads into one reusable buffer (``readinto``), so memory
  stays at ``workers x CHUNK`` whatever the model size. Safe to embed in any process.
* ``mmap`` (what the ``attest`` CLI uses): the file is mapped read-only and hashed in place. This skips
  the copy from the page cache into the buffer, which on a warm cache is a third of the work (measured
  with ``bench/hashing.py``: 0.75 s instead of 1.1 s for 2 GiB on 2 cores). The price, as for
  ``b3sum``, is that a file *truncated by another process while it is being hashed* kills the process
  with SIGBUS: fail-closed (no digest, no decision, non-zero exit), but not a clean error message, so
  long-lived processes (the guard inside a user's program, the registry) keep ``read``.

Either way a file whose size or modification time changes while it is hashed is refused: the digest
would describe bytes that no longer exist.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from attest.errors import ModelPathError

CHUNK = 4 * 1024 * 1024

ProgressCallback = Callable[[int], None]

_strategy = "read"


def use_mmap(enabled: bool = True) -> None:
    """Choose mmap (``True``) or buffered reads (``False``) for this process; see the module docstring.
    ``ATTEST_HASH_MMAP=0`` in the environment keeps reads even where a program asks for mmap."""
    global _strategy
    _strategy = "mmap" if enabled and os.environ.get("ATTEST_HASH_MMAP", "1") != "0" else "read"


def strategy() -> str:
    """The way this process reads files to hash them: ``read`` or ``mmap``."""
    return _strategy


# Digests of files this process wrote and hashed in the same pass (the guard's private snapshots, see
# attest/guard.py), so verifying the snapshot does not read it a second time. An entry holds only while
# the file keeps its device, inode, size, mtime and ctime: no write can change the bytes without
# changing the ctime, which user space cannot set back.
_known: dict[tuple[int, int], tuple[int, int, int, str]] = {}


def remember_digest(fd: int, digest: str) -> None:
    """Record the digest of the bytes just written and hashed through ``fd`` (after its last change)."""
    st = os.fstat(fd)
    _known[(st.st_dev, st.st_ino)] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    """Lowercase hex SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        before = os.fstat(f.fileno())
        known = _known.get((before.st_dev, before.st_ino))
        if known is not None and known[:3] == (before.st_size, before.st_mtime_ns, before.st_ctime_ns):
            if progress is not None:
                progress(before.st_size)
            return known[3]
        if _strategy == "mmap" and before.st_size >= CHUNK:
            _hash_mapped(f.fileno(), before.st_size, h.update, progress)
        else:
            _hash_read(f, h.update, progress)
        after = os.fstat(f.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise ModelPathError(f"{path}: the file changed while it was being hashed")
    return h.hexdigest()


def _hash_read(f: BinaryIO, update: Callable[[memoryview], None], progress: ProgressCallback | None) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):  # type: ignore[attr-defined]
        update(view[:n])
        if progress is not None:
            progress(n)


def _hash_mapped(
    fd: int, size: int, update: Callable[[memoryview], None], progress: ProgressCallback | None
) -> None:
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        mapped.madvise(mmap.MADV_SEQUENTIAL)
        with memoryview(mapped) as view:
            for offset in range(0, size, CHUNK):
                with view[offset : offset + CHUNK] as part:
                    update(part)
                    if progress is not None:
                        progress(len(part))


def default_workers() -> int:
    """One thread per usable core: SHA-256 is CPU-bound once the page cache is warm."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def sha256_files(
    paths: Sequence[Path], workers: int | None = None, progress: ProgressCallback | None = None
) -> list[str]:
    """Hash files in parallel, returning hex digests in the order of ``paths``."""
    if len(paths) <= 1:
        return [sha256_file(p, progress) for p in paths]
    # Largest first, so one big file does not start last and leave the other cores idle.
    order = sorted(range(len(paths)), key=lambda i: -paths[i].stat().st_size)
    results: list[str] = [""] * len(paths)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        futures = {i: pool.submit(sha256_file, paths[i], progress) for i in order}
        for i, fut in futures.items():
            results[i] = fut.result()
    return results
