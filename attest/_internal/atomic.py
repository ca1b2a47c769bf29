"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from types import TracebackType

from attest._internal.capped import os_error

_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class signals_held:  # lowercase, as contextlib.suppress: read as a statement
    """Defer SIGINT, SIGTERM and SIGHUP while a temporary file or folder is made and its name bound.

    The CLI turns those signals into exceptions (``cli.main``); one landing between the ``mkdir`` and
    the ``try`` that removes the temporary on failure left it behind (a pull killed by SIGTERM on a
    loaded machine kept its staging folder). A signal that arrives meanwhile stays pending and is
    delivered on exit, inside the caller's cleanup. ``__exit__`` returns None, so type checkers know
    the names bound inside are bound after it."""

    def __enter__(self) -> None:
        self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED) if _DEFERRED else None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one ``rename``.

    Failures are one-line ``AttestError``s naming ``path`` (a missing folder is a usage error, a full
    disk is "could not decide"), never the temporary file's name; the temporary file never survives.
    """
    path = Path(path)
    tmp = ""
    try:
        with signals_held():
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
            except OSError as exc:
                raise os_error(path, exc, f"cannot write into {path.parent or '.'}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise os_error(path, exc, "cannot write") from None
    except BaseException:
        if tmp:
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
