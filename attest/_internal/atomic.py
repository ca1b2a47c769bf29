"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from attest._internal.capped import os_error


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one ``rename``.

    Failures are one-line ``AttestError``s naming ``path`` (a missing folder is a usage error, a full
    disk is "could not decide"), never the temporary file's name; the temporary file never survives.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise os_error(path, exc, f"cannot write into {path.parent or '.'}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise os_error(path, exc, "cannot write") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_RENAME_NOREPLACE = 1  # linux/fs.h


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist; raise ``FileExistsError`` otherwise.

    A plain ``rename`` of a folder silently replaces an *empty* folder created meanwhile by another
    process, and ``exists()`` then ``rename`` is a race. Linux's ``renameat2(RENAME_NOREPLACE)``
    decides atomically in the kernel; elsewhere (or on a file system without it) the check-then-rename
    fallback narrows the window to microseconds.
    """
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd = -100
        rc = renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    os.rename(src, dst)
