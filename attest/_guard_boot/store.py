"""The guard's persistent verified store: hash a model file once, not on every load.

Why: a warm, unguarded ``from_pretrained`` maps the weights lazily and reads almost nothing, while the
guard must copy and hash every byte (SHA-256 is ~1 GiB/s per core) to make its private snapshot. The
store keeps the bytes the guard has already copied *and hashed*, named by their sha256, so the next
load of an unchanged file links that verified copy into its snapshot instead of reading the source.

What is kept, under ``$ATTEST_GUARD_STORE`` (default ``$XDG_CACHE_HOME/model-attest/guard``):

* ``blobs/<sha256>``: content-addressed copies, mode 0444. A blob *is* a snapshot file the guard wrote
  and hashed while copying (a hard link to it), so storing costs no extra read or write.
* ``index.json``: (1) source file identity ``(st_dev, st_ino)`` -> ``(size, mtime_ns, ctime_ns,
  sha256)``, git's "racy-clean" rule: any write to the source, a rename over it or a ``touch`` that
  puts the mtime back changes the inode or the ctime, which an unprivileged user cannot set; (2) per
  blob ``(inode, size, mtime_ns, last use)``, checked before a blob is used.
* ``tmp/``: the default place for snapshots, so that blobs can be hard-linked into them (same file
  system).

What it trusts, and why that is enough: the index only *chooses* which stored blob stands for a source
file. A stale or forged index entry can only make the guard load a blob whose bytes hash to its name,
and the verifier then checks that digest against the signed manifest, so unverified bytes never load
through the store; the worst an index can do is pick an older, also-signed version of a file. The blob
itself is trusted while it is a regular, read-only (no write bit at all) file owned by this user, with
the inode, size and mtime it had when it was hashed, in a store folder owned by this user and writable
by nobody else. A store that fails those checks is not used (the load falls back to copy and hash), a
blob that fails them is deleted. Someone who runs as the same user and deliberately puts a blob's mtime
back after writing it is out of scope: that user can as well edit attest itself.

Bounded: least recently used blobs are evicted past ``ATTEST_GUARD_STORE_MAX`` (default 32 GiB; a file
larger than that is never stored). ``ATTEST_GUARD_STORE=off`` disables the store. Any error here
(corrupt index, full disk, a racing process) degrades to "not in the store", never to a failed load.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attest._internal.atomic import write_atomic
from attest.errors import AttestError

STORE_ENV = "ATTEST_GUARD_STORE"
STORE_MAX_ENV = "ATTEST_GUARD_STORE_MAX"
DEFAULT_MAX_BYTES = 32 * 2**30
_OFF = {"off", "0", "no", "none", "false", "disabled"}
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
# A source entry is recorded only when the file's last change is older than the copy's start by more
# than the time stamp granularity: a write in the same tick as the recorded ctime would leave the ctime
# unchanged (git's "racy clean" problem). Kernel stamps come from a clock that ticks every 1-10 ms;
# file systems with whole-second stamps get 2 s.
_RACY_NS = 50_000_000
_RACY_COARSE_NS = 2_000_000_000
# Index entries kept at most (oldest dropped first): each is one source file ever loaded.
_MAX_SOURCES = 100_000
# A snapshot in tmp/ older than this and locked by no process was left by a killed program.
_STALE_NS = 3600 * 1_000_000_000


def store_path() -> Path | None:
    """Where the store lives, or None when ``ATTEST_GUARD_STORE`` turns it off."""
    value = os.environ.get(STORE_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "model-attest" / "guard"


def max_bytes() -> int:
    """``ATTEST_GUARD_STORE_MAX`` (``20G``, ``500M``, plain bytes); unreadable values mean the default."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", os.environ.get(STORE_MAX_ENV, "").lower())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else DEFAULT_MAX_BYTES


def recordable(before: os.stat_result, after: os.stat_result, started_ns: int) -> bool:
    """May a source whose stat was ``before`` when the copy started and ``after`` when it ended be
    remembered under that identity? Only if nothing changed meanwhile and its last change is safely
    older than the start (see ``_RACY_NS``)."""
    if _identity(before) != _identity(after):
        return False
    coarse = before.st_ctime_ns % 1_000_000_000 == 0 and before.st_mtime_ns % 1_000_000_000 == 0
    return before.st_ctime_ns + (_RACY_COARSE_NS if coarse else _RACY_NS) < started_ns


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _private_dir(name: str | Path, dir_fd: int | None = None) -> int:
    """Open (creating, 0700) a folder that must be ours and writable by no one else; OSError if not."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        owner = "owned by another user" if st.st_uid != os.geteuid() else "writable by group or others"
        raise OSError(errno.EPERM, f"{owner} (mode {stat.filemode(st.st_mode)})", str(name))
    return fd


def _read_index(data: bytes) -> tuple[dict[str, list[Any]], dict[str, list[int]]]:
    """Parse index.json, keeping only well-formed entries: a corrupt or truncated index is an empty one."""
    sources: dict[str, list[Any]] = {}
    blobs: dict[str, list[int]] = {}
    try:
        doc = json.loads(data)
    except ValueError:
        return sources, blobs
    if not isinstance(doc, dict) or doc.get("version") != 1:
        return sources, blobs
    raw_blobs = doc.get("blobs")
    for digest, rec in raw_blobs.items() if isinstance(raw_blobs, dict) else ():
        if _DIGEST.match(str(digest)) and _ints(rec, 4):
            blobs[digest] = list(rec)
    raw_sources = doc.get("sources")
    for key, rec in raw_sources.items() if isinstance(raw_sources, dict) else ():
        if (
            isinstance(rec, list)
            and len(rec) == 4
            and _ints(rec[:3], 3)
            and isinstance(rec[3], str)
            and rec[3] in blobs
        ):
            sources[str(key)] = list(rec)
    return sources, blobs


def _ints(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(type(v) is int for v in value)


def _open_root() -> tuple[Path | None, int, str]:
    root = store_path()
    if root is None:
        return None, -1, f"off ({STORE_ENV})"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        return root, _private_dir(root), str(root)
    except OSError as exc:
        return None, -1, f"{root} not used: {exc.strerror or exc}"


def snapshot_dir() -> Path | None:
    """``tmp/`` in the store (private, on the blobs' file system, so they can be hard-linked into
    snapshots made there), or None when the store is off or not trusted."""
    root, fd, _ = _open_root()
    if root is None:
        return None
    try:
        os.close(_private_dir("tmp", fd))
    except OSError:
        return None
    finally:
        os.close(fd)
    return root / "tmp"


def open_store() -> tuple[Store | None, str]:
    """The store, checked, or (None, why it is not used): off, or not private to this user."""
    root, fd, state = _open_root()
    if root is None:
        return None, state
    try:
        blobs_fd = _private_dir("blobs", fd)
    except OSError as exc:
        os.close(fd)
        return None, f"{root}/blobs not used: {exc.strerror or exc}"
    return Store(root, fd, blobs_fd), state


class Store:
    """An opened, checked store (see ``open_store``); every method degrades to "not stored" on error.
    Safe to share between the snapshot's copying threads."""

    def __init__(self, root: Path, fd: int, blobs_fd: int) -> None:
        self.root = root
        self.fd = fd
        self.blobs_fd = blobs_fd
        self.dev = os.fstat(blobs_fd).st_dev
        self.max_bytes = max_bytes()
        self.sources, self.blobs = self._load()
        self.dropped: list[str] = []  # blobs that failed their checks, removed at commit
        self._lock = threading.Lock()

    def close(self) -> None:
        for fd in (self.blobs_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> tuple[dict[str, list[Any]], dict[str, list[int]]]:
        try:
            fd = os.open("index.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return {}, {}
        with os.fdopen(fd, "rb") as f:
            try:
                return _read_index(f.read(256 * 1024 * 1024))
            except OSError:
                return {}, {}

    # ---------------------------------------------------------------------------------------------
    # using blobs

    def lookup(self, st: os.stat_result) -> str | None:
        """The digest recorded for a source file with exactly this identity, else None."""
        with self._lock:
            rec = self.sources.get(f"{st.st_dev}:{st.st_ino}")
        if rec is None or rec[:3] != [st.st_size, st.st_mtime_ns, st.st_ctime_ns]:
            return None
        return str(rec[3])

    def _blob_ok(self, st: os.stat_result, digest: str) -> bool:
        rec = self.blobs.get(digest)
        return (
            rec is not None
            and stat.S_ISREG(st.st_mode)
            and st.st_uid == os.geteuid()
            and not st.st_mode & 0o222
            and [st.st_ino, st.st_size, st.st_mtime_ns] == rec[:3]
        )

    def link_into(self, digest: str, dst: Path) -> bool:
        """Hard-link the blob into a snapshot at ``dst``; True only if the linked file passes the blob
        checks (checked on the link itself, so a blob swapped meanwhile is caught). A blob that fails
        them is forgotten now and deleted at the next commit."""
        with self._lock:
            if digest not in self.blobs:
                return False
        try:
            os.link(digest, dst, src_dir_fd=self.blobs_fd, follow_symlinks=False)
        except OSError:
            return False
        try:
            st = os.lstat(dst)
        except OSError:
            return False
        with self._lock:
            ok = self._blob_ok(st, digest)
            if not ok:
                self.dropped.append(digest)
                self.blobs.pop(digest, None)
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(dst)
        return ok

    def _discard(self, digest: str) -> None:
        """Delete a blob that failed its checks (unless a good one replaced it meanwhile)."""
        try:
            st: os.stat_result | None = os.stat(digest, dir_fd=self.blobs_fd, follow_symlinks=False)
        except OSError:
            st = None
        if st is not None and self._blob_ok(st, digest):
            return
        if st is not None:
            with contextlib.suppress(OSError):
                os.unlink(digest, dir_fd=self.blobs_fd)
        self.blobs.pop(digest, None)
        self.sources = {k: v for k, v in self.sources.items() if v[3] != digest}

    # ---------------------------------------------------------------------------------------------
    # adding blobs

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open("lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit(self, used: list[str], new: list[tuple[os.stat_result | None, str, Path]]) -> None:
        """Record one snapshot: ``used`` blobs (refresh their LRU time) and ``new`` files the guard
        copied and hashed, as ``(source stat if recordable, digest, snapshot file)``; delete the blobs
        that failed their checks. Then evict past the bound and write the index atomically, all under
        the store's lock so concurrent guards do not lose each other's entries."""
        try:
            with self._locked():
                self.sources, self.blobs = self._load()  # what others committed meanwhile
                for digest in self.dropped:
                    self._discard(digest)
                now = time.time_ns()
                for digest in used:
                    if digest in self.blobs:
                        self.blobs[digest][3] = now
                for source_st, digest, snapshot_file in new:
                    if not self._add_blob(digest, snapshot_file, now):
                        continue
                    if source_st is not None:
                        key = f"{source_st.st_dev}:{source_st.st_ino}"
                        self.sources.pop(key, None)  # re-inserted last: the newest entries are kept
                        self.sources[key] = [
                            source_st.st_size,
                            source_st.st_mtime_ns,
                            source_st.st_ctime_ns,
                            digest,
                        ]
                self._evict()
                self._write()
                self._sweep()
        except (OSError, AttestError):
            return  # the store is an optimisation: the load itself already succeeded

    def _add_blob(self, digest: str, snapshot_file: Path, now: int) -> bool:
        try:
            current = os.stat(digest, dir_fd=self.blobs_fd, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and self._blob_ok(current, digest):
            self.blobs[digest][3] = now
            return True
        if current is not None:  # an orphan or a damaged blob: replace it with the fresh copy
            os.unlink(digest, dir_fd=self.blobs_fd)
            self.blobs.pop(digest, None)
        st = os.lstat(snapshot_file)
        if st.st_size > self.max_bytes or st.st_dev != self.dev or st.st_mode & 0o222:
            return False
        try:
            os.link(snapshot_file, digest, dst_dir_fd=self.blobs_fd, follow_symlinks=False)
        except OSError:
            return False
        st = os.stat(digest, dir_fd=self.blobs_fd, follow_symlinks=False)
        self.blobs[digest] = [st.st_ino, st.st_size, st.st_mtime_ns, now]
        return True

    def _evict(self) -> None:
        total = sum(rec[1] for rec in self.blobs.values())
        for digest in sorted(self.blobs, key=lambda d: self.blobs[d][3]):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(digest, dir_fd=self.blobs_fd)
            total -= self.blobs.pop(digest)[1]
        for name in os.listdir(self.blobs_fd):  # orphans: blobs whose record was lost
            if name not in self.blobs:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self.blobs_fd)
        live = [(k, v) for k, v in self.sources.items() if v[3] in self.blobs]
        self.sources = dict(live[-_MAX_SOURCES:])  # entries of deleted or re-downloaded files age out

    def _sweep(self) -> None:
        """Remove snapshots in ``tmp/`` left by programs that were killed before their clean-up ran:
        older than ``_STALE_NS`` and not share-locked by a live process (``hooks.hold``)."""
        now = time.time_ns()
        tmp = self.root / "tmp"
        try:
            candidates = []
            for entry in os.scandir(tmp):
                if entry.name.startswith("attest-verified-"):
                    candidates.append(Path(entry.path))
                elif entry.name.startswith("attest-run-") and entry.is_dir(follow_symlinks=False):
                    candidates += [
                        Path(e.path) for e in os.scandir(entry.path) if e.name.startswith("attest-verified-")
                    ]
        except OSError:
            return
        for path in candidates:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if now - os.fstat(fd).st_mtime_ns < _STALE_NS:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue  # in use
            finally:
                os.close(fd)

    def _write(self) -> None:
        doc = {"version": 1, "sources": self.sources, "blobs": self.blobs}
        write_atomic(self.root / "index.json", json.dumps(doc, separators=(",", ":")).encode(), 0o600)

    def usage(self) -> tuple[int, int]:
        """(number of blobs, bytes they take)."""
        return len(self.blobs), sum(rec[1] for rec in self.blobs.values())
