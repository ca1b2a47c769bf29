"""The transparency log: leaf records, the sequencer's append, stored subtree hashes, proofs, checkpoints.

Only complete subtrees are stored (``tree_node``); any root or proof for any tree size is assembled
from O(log n) of them (``attest._internal.merkle.complete_subtrees``), fetched in one query. Complete
subtrees never change once written, so a process-wide cache of them is always valid.

``append`` must run inside ``Database.sequencer_session`` (the global write lock): it reads the tree
size, writes the entry's leaf, the new complete subtrees and the signed checkpoint of the new size in
the same transaction as the entry row. Either all of it is committed or none of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, or_
from sqlmodel import Session, and_, col, select

from attest._internal import merkle
from attest._internal.atomic import write_atomic
from attest.checkpoint import Checkpoint as CheckpointBody
from attest.checkpoint import NoteSigner, NoteVerifier, sign_checkpoint
from attest.errors import AttestError
from registry.models import Checkpoint, LogKey, TreeNode

NodeKey = tuple[int, int]
log = logging.getLogger("registry.log")


class LogConsistencyError(AttestError):
    """The stored log contradicts itself or its signed checkpoints (a corrupted or truncated database,
    a different key): the server refuses proofs and writes rather than serve a wrong proof or sign a
    fork. 503: the fault is the server's, and a retry after repair may succeed."""

    http_status = 503


class NotFoundError(AttestError):
    """A log index, tree size or object that does not exist."""

    http_status = 404


def load_or_create_log_key(path: Path, origin: str) -> NoteSigner:
    """The log's Ed25519 key, created on first start (mode 0600) and reused ever after."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise LogConsistencyError(f"log key {path} is not an Ed25519 private key")
        return NoteSigner(origin, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, mode=0o600)
    return NoteSigner(origin, key)


class TransparencyLog:
    """One registry's log: signing key, origin and the immutable-node cache."""

    def __init__(self, signer: NoteSigner, cache_limit: int = 250_000) -> None:
        self.signer = signer
        self.origin = signer.name
        self.verifier: NoteVerifier = signer.verifier
        self._cache: dict[NodeKey, bytes] = {}
        self._cache_limit = cache_limit
        self._lock = threading.Lock()
        # Set when the stored log contradicts a signed checkpoint; from then on no proof is served and
        # nothing is appended by this process (``ensure_intact``). Cleared only by a restart whose
        # startup check passes.
        self.broken: str | None = None
        self.on_broken: Callable[[str], None] | None = None

    # -- integrity -----------------------------------------------------------------------------------
    def mark_broken(self, problem: str) -> LogConsistencyError:
        """Record a contradiction (log line, metric via ``on_broken``) and return the error to raise."""
        if self.broken is None:
            self.broken = problem
            log.error("log integrity failure", extra={"fields": {"problem": problem}})
            if self.on_broken is not None:
                self.on_broken(problem)
        with self._lock:
            self._cache.clear()
        return LogConsistencyError(f"transparency log integrity failure: {self.broken}")

    def ensure_intact(self) -> None:
        if self.broken is not None:
            raise LogConsistencyError(f"transparency log integrity failure: {self.broken}")

    # -- nodes -------------------------------------------------------------------------------------
    def _fetch(
        self, session: Session, keys: Iterable[NodeKey], overlay: dict[NodeKey, bytes]
    ) -> dict[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        missing = []
        for k in set(keys):
            if k in overlay:
                found[k] = overlay[k]
            elif k in self._cache:
                found[k] = self._cache[k]
            else:
                missing.append(k)
        for i in range(0, len(missing), 400):
            by_level: dict[int, list[int]] = {}
            for level, idx in missing[i : i + 400]:
                by_level.setdefault(level, []).append(idx)
            # one "level = L AND idx IN (...)" per level: both SQLite and PostgreSQL search the
            # primary key with it (SQLite scans the whole table for a row-value IN list)
            condition = or_(
                *(and_(col(TreeNode.level) == lv, col(TreeNode.idx).in_(ixs)) for lv, ixs in by_level.items())
            )
            rows = session.exec(select(TreeNode.level, TreeNode.idx, TreeNode.hash).where(condition)).all()
            for level, idx, h in rows:
                found[(level, idx)] = bytes(h)
        with self._lock:
            if len(self._cache) > self._cache_limit:
                self._cache.clear()
            for k in missing:
                if k in found:
                    self._cache[k] = found[k]
        absent = [k for k in keys if k not in found]
        if absent:
            raise self.mark_broken(f"tree nodes missing from the store: {sorted(set(absent))[:5]}")
        return found

    def _oracle(
        self, session: Session, ranges: list[tuple[int, int]], overlay: dict[NodeKey, bytes] | None = None
    ) -> merkle.SubtreeHash:
        """Fetch every node the given ranges need in one query and return a subtree-hash function."""
        keys = [k for start, count in ranges for k in merkle.complete_subtrees(start, count)]
        nodes = self._fetch(session, keys, overlay or {})

        def subtree(start: int, count: int) -> bytes:
            return merkle.combine_subtrees([nodes[k] for k in merkle.complete_subtrees(start, count)])

        return subtree

    @staticmethod
    def _recorder(ranges: list[tuple[int, int]]) -> merkle.SubtreeHash:
        def record(start: int, count: int) -> bytes:
            ranges.append((start, count))
            return merkle.EMPTY_ROOT

        return record

    # -- reads ---------------------------------------------------------------------------------------
    def size(self, session: Session) -> int:
        return int(session.exec(select(func.max(Checkpoint.size))).one() or 0)

    def root(self, session: Session, size: int, overlay: dict[NodeKey, bytes] | None = None) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        return self._oracle(session, [(0, size)], overlay)(0, size)

    def inclusion_proof(
        self, session: Session, index: int, size: int, root: bytes | None = None, leaf: bytes | None = None
    ) -> list[bytes]:
        leaves = {index: leaf} if leaf is not None else None
        return self.inclusion_proofs(session, [index], size, root, leaves)[index]

    def inclusion_proofs(
        self,
        session: Session,
        indices: list[int],
        size: int,
        root: bytes | None = None,
        leaves: dict[int, bytes] | None = None,
    ) -> dict[int, list[bytes]]:
        """Proofs for several leaves in one tree, with every node they need fetched in one query.

        Every proof is checked before it is returned: against ``root`` (the signed checkpoint's root
        hash; default: the stored checkpoint of ``size``, or for a size inside a bulk batch, which
        was never signed, the stored tree's own root) and the leaf hashes in ``leaves`` (callers
        pass the hash of the leaf record they serve; default: the stored leaf node). A proof that
        does not verify means the store was altered: the log is marked broken and nothing is served.
        """
        self.ensure_intact()
        if not indices:
            return {}
        if root is None:
            root = self._signed_roots(session, [size]).get(size)
        ranges: list[tuple[int, int]] = [(0, size), *((i, 1) for i in indices)]
        for index in indices:
            if not 0 <= index < size:
                raise NotFoundError(f"log index {index} is not in a tree of size {size}")
            merkle.inclusion_path(index, size, self._recorder(ranges))  # which ranges, without hashes
        oracle = self._oracle(session, ranges)
        if root is None:  # a size the log never signed (inside a bulk batch): prove against the tree
            root = oracle(0, size)
        elif oracle(0, size) != bytes(root):
            raise self.mark_broken(f"stored tree of size {size} does not reproduce its signed root hash")
        root = bytes(root)
        proofs = {index: merkle.inclusion_path(index, size, oracle) for index in indices}
        for index, proof in proofs.items():
            stored_leaf = oracle(index, 1)
            leaf = (leaves or {}).get(index, stored_leaf)
            if leaf != stored_leaf:
                raise self.mark_broken(f"entry {index}: leaf record does not match the stored leaf hash")
            try:
                merkle.verify_inclusion(leaf, index, size, proof, root)
            except AttestError:
                raise self.mark_broken(
                    f"inclusion proof of entry {index} in tree {size} does not verify"
                ) from None
        return proofs

    def _signed_roots(self, session: Session, sizes: list[int]) -> dict[int, bytes]:
        """Root hashes the log signed for these sizes (sizes inside a bulk batch have none)."""
        rows = session.exec(
            select(Checkpoint.size, Checkpoint.root_hash).where(col(Checkpoint.size).in_(sizes))
        ).all()
        return {int(n): bytes(r) for n, r in rows}

    def leaf_hash(self, session: Session, index: int) -> bytes:
        return self._fetch(session, [(0, index)], {})[(0, index)]

    def consistency_proof(self, session: Session, size1: int, size2: int) -> list[bytes]:
        """Consistency proof from ``size1`` to ``size2``, checked against both signed roots first."""
        self.ensure_intact()
        if not 0 <= size1 <= size2:
            raise NotFoundError(f"no consistency proof from tree size {size1} to {size2}")
        signed = self._signed_roots(session, [size1, size2])
        ranges: list[tuple[int, int]] = [(0, size1), (0, size2)]
        merkle.consistency_path(size1, size2, self._recorder(ranges))
        oracle = self._oracle(session, ranges)
        roots = {}
        for n in (size1, size2):
            roots[n] = oracle(0, n) if n else merkle.EMPTY_ROOT
            if n in signed and roots[n] != signed[n]:
                raise self.mark_broken(f"stored tree of size {n} does not reproduce its signed root hash")
        proof = merkle.consistency_path(size1, size2, oracle)
        try:
            merkle.verify_consistency(size1, size2, proof, roots[size1], roots[size2])
        except AttestError:
            raise self.mark_broken(f"signed checkpoints {size1} and {size2} are not consistent") from None
        return proof

    def checkpoint(self, session: Session, size: int | None = None) -> Checkpoint:
        """The signed checkpoint of ``size`` (default: the latest)."""
        query = select(Checkpoint)
        query = (
            query.where(Checkpoint.size == size)
            if size is not None
            else query.order_by(col(Checkpoint.size).desc())
        )
        row = session.exec(query.limit(1)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint for tree size {size}")
        return row

    # -- writes (inside the sequencer transaction) -------------------------------------------------
    def initialise(self, session: Session) -> None:
        """First start: record the log key and sign the empty tree; later starts: check the key."""
        vkey = self.verifier.vkey()
        stored = session.get(LogKey, self.origin)
        if stored is None:
            others = session.exec(select(LogKey)).first()
            if others is not None:
                raise LogConsistencyError(
                    f"this database belongs to log {others.origin!r}, not {self.origin!r} (check --origin)"
                )
            session.add(LogKey(origin=self.origin, vkey=vkey, created_at=datetime.now(UTC)))
        elif stored.vkey != vkey:
            raise LogConsistencyError(
                "the log key in the data directory is not the key this database's checkpoints were signed with"
            )
        if session.get(Checkpoint, 0) is None:
            self._sign(session, 0, merkle.EMPTY_ROOT)

    def append(self, session: Session, leaf_hash: bytes) -> tuple[int, Checkpoint]:
        """Append one leaf; return its index and the checkpoint of the new tree (same transaction)."""
        first, checkpoint = self.append_many(session, [leaf_hash])
        return first, checkpoint

    def append_many(self, session: Session, leaf_hashes: list[bytes]) -> tuple[int, Checkpoint]:
        """Append leaves in order; return the first index and the one checkpoint of the new tree.

        Bulk loads use this with large batches (one signed checkpoint per batch); publish uses it
        with one leaf. Node rows go in with one multi-row INSERT.
        """
        self.ensure_intact()
        first = self.size(session)
        # Before signing anything: the stored subtrees must reproduce the last signed root. The new
        # tree is built on exactly those subtrees, so a match proves the new checkpoint consistent
        # with the previous one; a mismatch would sign a fork, so the log stops instead.
        previous = self.checkpoint(session, first)
        if self.root(session, first) != bytes(previous.root_hash):
            raise self.mark_broken(
                f"stored tree of size {first} does not reproduce its signed checkpoint; refusing to sign"
            )
        overlay: dict[NodeKey, bytes] = {}
        rows: list[dict[str, object]] = []
        for offset, leaf_hash in enumerate(leaf_hashes):
            level, idx, current = 0, first + offset, leaf_hash
            overlay[(0, idx)] = current
            rows.append({"level": 0, "idx": idx, "hash": current})
            while idx & 1:  # this leaf completes subtrees: store each new complete parent
                left = self._fetch(session, [(level, idx - 1)], overlay)[(level, idx - 1)]
                current = merkle.node_hash(left, current)
                level, idx = level + 1, idx >> 1
                overlay[(level, idx)] = current
                rows.append({"level": level, "idx": idx, "hash": current})
        session.execute(insert(TreeNode), rows)
        size = first + len(leaf_hashes)
        root = self.root(session, size, overlay)
        return first, self._sign(session, size, root)

    def _sign(self, session: Session, size: int, root: bytes) -> Checkpoint:
        note = sign_checkpoint(CheckpointBody(self.origin, size, root), [self.signer])
        row = Checkpoint(size=size, root_hash=root, note=note, created_at=datetime.now(UTC))
        session.add(row)
        return row
