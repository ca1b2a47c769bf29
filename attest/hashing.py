"""Parallel, streaming SHA-256 of many files with bounded memory.

Files are hashed concurrently by threads: ``hashlib`` releases the GIL while it digests a large buffer,
so N threads reach N cores' worth of OpenSSL SHA-256 throughput. Each worker reads into one reusable
buffer (``readinto``), so memory stays at ``workers x CHUNK`` whatever the model size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 * 1024 * 1024

ProgressCallback = Callable[[int], None]


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    """Lowercase hex SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            if progress is not None:
                progress(n)
    return h.hexdigest()


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
