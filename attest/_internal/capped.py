"""Read a small input file (a bundle, a policy, a predicate) with a size cap, refusing special files.

Why: ``Path.read_bytes()`` on ``/dev/zero`` never returns, on a FIFO it blocks until a writer comes,
and on a multi-gigabyte file it exhausts memory before any parser gets to say "this is not a bundle".
Inputs the CLI and the library parse whole are therefore opened without blocking, checked to be
regular files on the open descriptor (no check-then-open race), and read up to a cap.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from attest.errors import UndecidedError, UsageError

# Caps for documents read whole. A Sigstore bundle with a certificate chain and a large predicate
# (a scan with many findings, a manifest of ~100k files) stays well below 64 MiB; a policy is text.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_POLICY_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024 * 1024  # a PEM key or a certificate chain
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

# errno values that mean "you named the wrong thing" (exit 2) rather than "the system failed" (exit 3).
_USAGE_ERRNOS = {
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.EEXIST,
    errno.ENAMETOOLONG,
}  # fmt: skip


def _open_regular(path: Path, limit: int, what: str) -> int:
    """Open ``path`` without blocking (a FIFO with no writer would), and return the descriptor only if
    it is a regular file within ``limit``; the check is on the descriptor, so it cannot be swapped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise os_error(path, exc, f"cannot read {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: cannot read {what}: not a regular file (device, FIFO or socket)")
        if st.st_size > limit:
            raise UsageError(f"{path}: {what} is {st.st_size} bytes, over the {limit}-byte limit")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_capped(path: Path | str, limit: int, what: str = "file") -> bytes:
    """Return the bytes of the regular file ``path``, at most ``limit`` of them.

    Raises ``UsageError`` (exit 2) for a missing file, a directory, a FIFO, a device or socket, or a
    file over the cap, and ``UndecidedError`` (exit 3) for an I/O error while reading; every message is
    one line naming the path and ``what`` it was meant to be.
    """
    path = Path(path)
    fd = _open_regular(path, limit, what)
    try:
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1024 * 1024, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # the file grew while we read it
                raise UsageError(f"{path}: {what} is over the {limit}-byte limit")
        return b"".join(chunks)
    except OSError as exc:
        raise os_error(path, exc, f"cannot read {what}") from None
    finally:
        os.close(fd)


def read_capped_text(path: Path | str, limit: int, what: str = "file") -> str:
    """``read_capped`` decoded as UTF-8; a file that is not UTF-8 is a one-line usage error."""
    data = read_capped(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: {what} is not valid UTF-8 (byte {exc.start})") from None


def os_error(path: Path | str, exc: OSError, doing: str) -> UsageError | UndecidedError:
    """One-line error for an ``OSError`` about ``path``: a usage error when the caller named a missing,
    forbidden or wrong-kind path, "could not decide" (exit 3) when the system failed (EIO, ENOSPC...)."""
    reason = exc.strerror or str(exc)
    if exc.errno in _USAGE_ERRNOS:
        return UsageError(f"{path}: {doing}: {reason}")
    return UndecidedError(f"{path}: {doing}: {reason}")


def check_regular_file(path: Path | str, limit: int, what: str = "file") -> Path:
    """Refuse, without reading it, an input that is not a regular file of at most ``limit`` bytes.

    For inputs another module reads whole by path (a key, a deployment profile, a rule pack): the check
    runs on an open descriptor, so a FIFO never blocks it and ``/dev/zero`` is never read.
    """
    path = Path(path)
    os.close(_open_regular(path, limit, what))
    return path
