"""Verify before load: transformers, safetensors, torch and the rest refuse a model that does not verify.

Why a private snapshot: verifying files in place and then letting a loader read them again leaves a
window in which they can change (model-signing's fault 9). The guard instead copies the model folder
into a private directory (mode 0700, files read-only), verifies *that copy* against the policy, and
points the loader at it, so the bytes loaded are the bytes verified. Snapshots live until the process
exits (loaders memory-map them).

Why the copy is cheap: on a file system with reflinks (Btrfs, XFS, bcachefs, ZFS 2.2) the copy is a
``FICLONE`` clone: no data is copied, and the clone cannot change when the source does. Elsewhere
``copy_file_range`` copies inside the kernel, range by range, while a second thread hashes each range
already in the snapshot (from the page cache), so copying and hashing overlap and each byte of the
source is read once. That digest is handed to the verifier (``attest.hashing.remember_digest``), which
therefore does not read the snapshot again. Put the snapshots on the model's file system with
``ATTEST_SNAPSHOT_DIR`` to get reflinks.

Why the second load is cheaper still: a file copied and hashed once is kept in the per-user verified
store (``attest/_guard_boot/store.py``), and a later load of the same, unchanged source file (same
inode, size, mtime and ctime) hard-links that verified copy into its snapshot without reading or
hashing anything. Only copying and hashing are cached: the bundles are verified and the policy is
evaluated on every load. ``ATTEST_GUARD_STORE=off`` turns the store off.

Where the wrappers live: ``attest/_guard_boot/hooks.py`` (standard library only, so that ``attest run``
can load it into an interpreter that cannot import attest). This module is the in-process verifier
behind it (``install``), and the out-of-process one that ``attest run`` calls
(``python -m attest.guard --snapshot FOLDER --into DIR``).

Where attestations come from: ``*.sigstore.json`` bundles inside the model folder (``attest pull``
writes them there), plus, when a registry is configured, every attestation the registry holds for the
model digest (verified locally with its inclusion proofs). No policy configured means no load: the
guard fails closed.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import queue
import shutil
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest import hashing
from attest._guard_boot import store as guard_store
from attest.errors import AttestError
from attest.model_verification import BundleInput, verify_model
from attest.policy import Decision, Policy
from attest.verifying import Trust

if "_attest_guard_hooks" in sys.modules:  # `attest run` loaded the hooks by path: share them
    hooks = sys.modules["_attest_guard_hooks"]
else:
    from attest._guard_boot import hooks

    sys.modules["_attest_guard_hooks"] = hooks

POLICY_ENV = "ATTEST_POLICY"
REGISTRY_ENV = "ATTEST_REGISTRY"
SNAPSHOT_DIR_ENV = "ATTEST_SNAPSHOT_DIR"
DEBUG_ENV = hooks.DEBUG_ENV

ModelRefused = hooks.ModelRefused

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_STEP = 64 * 1024 * 1024  # unit of the copy/hash pipeline


class CannotProtect(AttestError):
    """``attest run`` cannot guarantee the guard in this program, so it does not start it (exit 3)."""

    exit_code = 3
    http_status = 503


@dataclass
class GuardConfig:
    policy: Policy | None
    trust: Trust = field(default_factory=Trust)
    registry: str | None = None


_config: GuardConfig | None = None


def snapshot_root() -> Path:
    """Where snapshots go: ``ATTEST_SNAPSHOT_DIR`` (same file system as the models gives reflinks),
    else the verified store's ``tmp/`` (so its blobs can be hard-linked in), else the temporary
    directory."""
    if os.environ.get(SNAPSHOT_DIR_ENV):
        return Path(os.environ[SNAPSHOT_DIR_ENV])
    return guard_store.snapshot_dir() or Path(tempfile.gettempdir())


def _clone(src: int, dst: int) -> bool:
    try:
        fcntl.ioctl(dst, _FICLONE, src)
    except OSError:
        return False
    return True


def _copy_range(src: int, dst: int, start: int, end: int, name: str) -> None:
    offset = start
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset, offset)
        except OSError as exc:  # across file systems, or a file system without it
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, min(end - offset, 16 * 1024 * 1024), offset)
            n = os.pwrite(dst, data, offset) if data else 0
        if n == 0:
            raise OSError(f"{name}: the file shrank while it was being copied")
        offset += n


def _hash_range(fd: int, start: int, end: int, h: Any, buf: memoryview) -> None:
    offset = start
    while offset < end:
        n = os.preadv(fd, [buf[: min(len(buf), end - offset)]], offset)
        if n == 0:
            raise OSError("the snapshot file shrank while it was being hashed")
        h.update(buf[:n])
        offset += n


def _copy_and_hash(fs: int, fd: int, size: int, name: str) -> str:
    """In-kernel copy, range by range, while this thread hashes each range already in the snapshot
    (still in the page cache): copying and hashing overlap, and the hash is of the snapshot's bytes."""
    h = hashlib.sha256()
    buf = memoryview(bytearray(min(_STEP, max(size, 1))))
    if size <= _STEP:
        _copy_range(fs, fd, 0, size, name)
        _hash_range(fd, 0, size, h, buf)
        return h.hexdigest()
    copied: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue()

    def copier() -> None:
        try:
            for start in range(0, size, _STEP):
                _copy_range(fs, fd, start, min(start + _STEP, size), name)
                copied.put((start, min(start + _STEP, size)))
            copied.put(None)
        except BaseException as exc:
            copied.put(exc)

    thread = threading.Thread(target=copier, daemon=True)
    thread.start()
    try:
        while (item := copied.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            _hash_range(fd, item[0], item[1], h, buf)
    finally:
        thread.join()
    return h.hexdigest()


@dataclass
class _Copied:
    """One snapshot file: how it was made, its digest, bytes hashed for it, and (when the source did
    not change during the copy and is not "racy") the source's stat for the store's index."""

    dst: Path
    method: str
    digest: str
    hashed: int = 0
    source: os.stat_result | None = None


def _copy_file(src: Path, dst: Path) -> _Copied:
    """Snapshot one file: a reflink clone if the file system can (then hash the clone), else the
    copy/hash pipeline. Either way the digest is of the snapshot's bytes, not the source's, and the
    file ends read-only."""
    started = time.time_ns()
    fs = os.open(src, os.O_RDONLY)
    try:
        fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            before = os.fstat(fs)
            size = before.st_size
            if _clone(fs, fd):
                method, h = "reflink", hashlib.sha256()
                _hash_range(fd, 0, size, h, memoryview(bytearray(min(_STEP, max(size, 1)))))
                digest = h.hexdigest()
            else:
                method, digest = "copy_file_range", _copy_and_hash(fs, fd, size, str(src))
            after = os.fstat(fs)
            if os.fstat(fd).st_size != size or after.st_size != size:
                raise OSError(f"{src}: the file changed size while it was being copied")
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
    finally:
        os.close(fs)
    source = before if guard_store.recordable(before, after, started) else None
    return _Copied(dst, method, digest, size, source)


def _from_store(store: guard_store.Store | None, src: Path, dst: Path) -> _Copied | None:
    """A source file whose identity the store's index knows: its verified blob, linked, not read."""
    if store is None:
        return None
    digest = store.lookup(os.stat(src))
    if digest is None or not store.link_into(digest, dst):
        return None
    return _Copied(dst, "store", digest)


def _snapshot(source: Path, into: Path, store: guard_store.Store | None = None) -> tuple[Path, list[_Copied]]:
    """Copy ``source`` (a folder; links followed, ``.git`` left out) to a private folder under ``into``,
    files in parallel; files the store knows unchanged are linked from it instead."""
    parent = Path(tempfile.mkdtemp(prefix="attest-verified-", dir=into))
    copy = parent / (source.name or "model")
    try:
        if store is not None and os.stat(parent).st_dev != store.dev:
            store = None  # hard links cannot cross file systems: ATTEST_SNAPSHOT_DIR is elsewhere
        jobs: list[tuple[Path, Path]] = []
        for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
            rel = Path(dirpath).relative_to(source)
            if rel == Path("."):
                dirnames[:] = [d for d in dirnames if d != ".git"]
            (copy / rel).mkdir(mode=0o700, exist_ok=True)
            for name in filenames:
                src = Path(dirpath) / name
                if not stat.S_ISREG(src.stat().st_mode):
                    raise OSError(f"{src}: not a regular file")
                jobs.append((src, copy / rel / name))
        jobs.sort(key=lambda job: -job[0].stat().st_size)  # largest first: no big file starts last

        def one(job: tuple[Path, Path]) -> _Copied:
            return _from_store(store, *job) or _copy_file(*job)

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            files = list(pool.map(one, jobs))
        if store is not None:
            store.commit(
                [f.digest for f in files if f.method == "store"],
                [(f.source, f.digest, f.dst) for f in files if f.method != "store"],
            )
        for f in files:  # after the commit: linking into the store changes a file's ctime
            fd = os.open(f.dst, os.O_RDONLY)
            try:
                hashing.remember_digest(fd, f.digest)
            finally:
                os.close(fd)
    except BaseException:
        shutil.rmtree(parent, ignore_errors=True)
        raise
    return copy, files


def verify_snapshot(
    source: Path | str, config: GuardConfig | None = None, into: Path | None = None, use_store: bool = True
) -> tuple[Path, Decision]:
    """Copy ``source`` to a private snapshot, verify the copy, and return it (or raise ModelRefused).

    Files the verified store (``attest/_guard_boot/store.py``) holds unchanged are linked from it, not
    copied nor hashed; the policy decision is made afresh every time. The caller owns the snapshot's parent folder (``result[0].parent``) and removes it when done.
    """
    config = config or _config or config_from_env()
    source = Path(source)
    if config.policy is None:
        raise ModelRefused(source, f"no verification policy configured (set {POLICY_ENV})")
    if config.registry is None and config.policy.requirements and not any(source.glob("*.sigstore.json")):
        # nothing could satisfy the policy: say so before copying a folder that may be large
        raise ModelRefused(
            source,
            "MISSING_ATTESTATION: no attestation bundle (*.sigstore.json) here and no registry configured",
        )
    store, store_state = guard_store.open_store() if use_store else (None, "off")
    try:
        copy, files = _snapshot(source, into or snapshot_root(), store)
    except OSError as exc:
        raise ModelRefused(source, f"cannot snapshot: {exc.strerror or exc}") from None
    finally:
        if store is not None:
            store.close()
    try:
        local = [BundleInput(p.name, p.read_bytes(), p) for p in sorted(copy.glob("*.sigstore.json"))]
        decision = verify_model(copy, local, config.trust, config.policy, registry=config.registry)
    except AttestError as exc:
        shutil.rmtree(copy.parent, ignore_errors=True)
        raise ModelRefused(source, exc.message) from None
    except OSError as exc:
        shutil.rmtree(copy.parent, ignore_errors=True)
        raise ModelRefused(source, f"cannot verify: {exc}") from None
    if not decision.allowed:
        shutil.rmtree(copy.parent, ignore_errors=True)
        reasons = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons) or "not verified"
        raise ModelRefused(source, reasons, decision)
    decision.details["snapshot"] = "+".join(sorted({f.method for f in files})) or "empty"
    decision.details["snapshotFiles"] = len(files)
    decision.details["fromStore"] = sum(f.method == "store" for f in files)
    decision.details["hashedBytes"] = sum(f.hashed for f in files)
    decision.details["store"] = store_state
    return copy, decision


def _summary(decision: Decision) -> str:
    d = decision.details
    return (
        f"allowed {decision.model_digest}, {d.get('files')} files, snapshot by {d.get('snapshot')}, "
        f"{d.get('fromStore')} of {d.get('snapshotFiles')} from the verified store, {d.get('hashedBytes')} bytes hashed "
        f"(store: {d.get('store')})"
    )


def _in_process_verifier(source: Path) -> tuple[Path, str]:
    copy, decision = verify_snapshot(source)
    hooks.hold(copy.parent)
    atexit.register(shutil.rmtree, copy.parent, True)
    return copy, _summary(decision)


def install(
    policy: Policy | str | Path | None = None, trust: Trust | None = None, registry: str | None = None
) -> None:
    """Install the hooks in this process. Arguments default to ``ATTEST_POLICY`` / ``ATTEST_REGISTRY``.

    A bad policy raises here (``PolicyError``), before anything is patched. With no policy at all the
    hooks are installed and refuse every load (fail closed).
    """
    global _config
    policy_file = os.environ.get(POLICY_ENV) if policy is None else None
    if isinstance(policy, str | Path):
        policy_file = str(Path(policy).resolve())
    if policy is None or registry is None:
        env = config_from_env()
        policy = policy if policy is not None else env.policy
        registry = registry or env.registry
    if isinstance(policy, str | Path):
        policy = Policy.load(policy)
    _config = GuardConfig(policy, trust or Trust(), registry)
    if policy_file and hooks.SPEC_ENV not in os.environ:
        # multiprocessing spawn children install the same guard before their own code runs
        spec_dir = Path(tempfile.mkdtemp(prefix="attest-guard-"))
        atexit.register(shutil.rmtree, spec_dir, True)
        spec_file = spec_dir / "spec.json"
        spec_file.write_text(json.dumps({"mode": "in-process", "policy": policy_file, "registry": registry}))
        os.environ[hooks.SPEC_ENV] = str(spec_file)
    hooks.install_hooks(_in_process_verifier)


def uninstall() -> None:
    """Remove the hooks (snapshots already made stay until exit)."""
    global _config
    hooks.uninstall_hooks()
    _config = None
    spec = os.environ.get(hooks.SPEC_ENV, "")
    if "attest-guard-" in spec:
        os.environ.pop(hooks.SPEC_ENV, None)


def config_from_env() -> GuardConfig:
    policy_path = os.environ.get(POLICY_ENV)
    return GuardConfig(
        Policy.load(policy_path) if policy_path else None, Trust(), os.environ.get(REGISTRY_ENV) or None
    )


def _main(argv: list[str]) -> int:
    """``python -m attest.guard --snapshot FOLDER --into DIR``: the verifier ``attest run`` programs
    call. Prints one JSON line: ``{"ok": true, "snapshot": ..., "summary": ...}`` or
    ``{"ok": false, "reason": ...}``; exit 0 only when allowed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m attest.guard")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--into", required=True)
    args = parser.parse_args(argv)
    hashing.use_mmap()  # what the copy did not hash (nothing, normally): a private file, mapping is safe
    try:
        copy, decision = verify_snapshot(args.snapshot, into=Path(args.into))
    except ModelRefused as exc:
        print(json.dumps({"ok": False, "reason": exc.why}))
        return 1
    except AttestError as exc:
        print(json.dumps({"ok": False, "reason": exc.message}))
        return 1
    print(json.dumps({"ok": True, "snapshot": str(copy), "summary": _summary(decision)}))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(_main(sys.argv[1:]))
