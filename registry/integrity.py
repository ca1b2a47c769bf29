"""Does the stored log still reproduce what the log key signed?

A transparency log is only worth its signatures if the rows behind them are intact: a flipped byte
in ``tree_node`` makes every proof through that node wrong, a deleted tail makes served entries
disappear behind a checkpoint that still counts them, and appending on top of either would sign a
checkpoint that is not consistent with the previous one (a fork). This module recomputes the tree
from the stored leaf records and compares it with the stored subtrees and the signed checkpoints.

It runs at server start (``full``: every leaf and node; ``tip``: O(log n), for very large logs), on
demand (``attest registry fsck``, which adds every checkpoint's signature and each leaf against its
bundle), and its cheap part runs again before every append (``TransparencyLog.append_many``).
Each function returns problems as one-line strings; an empty list means intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from attest._internal import merkle
from attest._internal.log_leaf import check_leaf
from attest.checkpoint import NoteVerifier, verify_checkpoint
from attest.errors import AttestError
from registry.models import Checkpoint, Entry, TreeNode

MAX_PROBLEMS = 20
_BATCH = 5000


def _signed(verifier: NoteVerifier, row: Checkpoint) -> list[str]:
    """The checkpoint row's note verifies with the log key and states the row's size and root."""
    try:
        body = verify_checkpoint(row.note, [verifier], origin=verifier.name)
    except AttestError as exc:
        return [f"checkpoint {row.size}: signature or note invalid: {exc.message}"]
    if body.size != row.size or body.root_hash != bytes(row.root_hash):
        return [f"checkpoint {row.size}: signed note states size {body.size}, not the stored row"]
    return []


def _rows(session: Session, stmt: Any) -> Iterator[Any]:
    yield from session.exec(stmt.execution_options(yield_per=_BATCH))


def check_log(session: Session, verifier: NoteVerifier, full: bool = True, deep: bool = False) -> list[str]:
    """Problems with the stored log against its latest signed checkpoint (``[]``: intact).

    ``full`` recomputes every leaf hash from its leaf record and every stored subtree from its
    children; ``deep`` (fsck) also verifies every checkpoint the log ever signed and checks each
    leaf record against the stored bundle.
    """
    latest = session.exec(select(Checkpoint).order_by(col(Checkpoint.size).desc()).limit(1)).first()
    if latest is None:
        return ["no signed checkpoint is stored (not even the empty tree)"]
    problems = _signed(verifier, latest)
    if problems:
        return problems
    size = latest.size
    entries = int(
        session.exec(select(func.count()).select_from(Entry).where(col(Entry.log_index) < size)).one()
    )
    if entries != size:
        return [f"log truncated: signed checkpoint counts {size} entries, {entries} are stored"]
    if size == 0:
        return []
    if not full:
        return _check_tip(session, latest)
    return _check_full(session, verifier, latest, deep)


def _check_tip(session: Session, latest: Checkpoint) -> list[str]:
    """O(log n): the stored subtrees give the signed root, and the last leaf matches its record."""
    size = latest.size
    last = session.exec(select(Entry.leaf, Entry.leaf_hash).where(Entry.log_index == size - 1)).first()
    if last is None:
        return [f"log truncated: entry {size - 1} is missing"]
    keys = set(merkle.complete_subtrees(0, size)) | {(0, size - 1)}
    nodes: dict[tuple[int, int], bytes] = {}
    for level, idx, h in session.exec(
        select(TreeNode.level, TreeNode.idx, TreeNode.hash).where(
            or_(*(and_(col(TreeNode.level) == lv, col(TreeNode.idx) == ix) for lv, ix in keys))
        )
    ):
        nodes[(int(level), int(idx))] = bytes(h)
    missing = sorted(keys - nodes.keys())
    if missing:
        return [f"tree nodes missing from the store: {missing[:5]}"]
    root = merkle.combine_subtrees([nodes[k] for k in merkle.complete_subtrees(0, size)])
    if root != bytes(latest.root_hash):
        return [f"stored tree of size {size} does not reproduce its signed root hash"]
    leaf, stored = last
    if merkle.leaf_hash(leaf.encode()) != bytes(stored) or nodes[(0, size - 1)] != bytes(stored):
        return [f"entry {size - 1}: leaf record does not match its leaf hash"]
    return []


def _check_full(session: Session, verifier: NoteVerifier, latest: Checkpoint, deep: bool) -> list[str]:
    size = latest.size
    problems: list[str] = []
    leaves: list[bytes] = []
    stmt = select(Entry.log_index, Entry.leaf, Entry.leaf_hash, Entry.bundle if deep else Entry.log_index)
    for index, leaf, stored, bundle in _rows(
        session, stmt.where(col(Entry.log_index) < size).order_by(col(Entry.log_index))
    ):
        if index != len(leaves):
            return [f"log truncated: entry {len(leaves)} is missing"]
        computed = merkle.leaf_hash(leaf.encode())
        if computed != bytes(stored):
            problems.append(f"entry {index}: leaf record does not match its stored leaf hash")
        if deep:
            try:
                check_leaf(leaf.encode(), json.loads(bundle))
            except (AttestError, ValueError) as exc:
                problems.append(f"entry {index}: {getattr(exc, 'message', exc)}")
        leaves.append(computed)
        if len(problems) >= MAX_PROBLEMS:
            return problems
    # level by level: the stored subtrees must equal the ones recomputed from the leaf records
    wanted = set(merkle.complete_subtrees(0, size))
    if deep:  # every signed size's root needs its own complete subtrees
        sizes = [int(s) for s in session.exec(select(Checkpoint.size).where(col(Checkpoint.size) > 0))]
        for s in sizes:
            wanted.update(merkle.complete_subtrees(0, s))
    kept: dict[tuple[int, int], bytes] = {}
    level, current = 0, leaves
    while current:
        seen = 0
        for idx, stored in _rows(
            session,
            select(TreeNode.idx, TreeNode.hash)
            .where(TreeNode.level == level, col(TreeNode.idx) < len(current))
            .order_by(col(TreeNode.idx)),
        ):
            if idx != seen:
                problems.append(f"tree node level {level} index {seen} is missing")
                return problems
            seen += 1
            if bytes(stored) != current[idx]:
                problems.append(f"tree node level {level} index {idx} does not match its children")
                if len(problems) >= MAX_PROBLEMS:
                    return problems
        if seen != len(current):
            problems.append(f"tree node level {level} index {seen} is missing")
            return problems
        for idx, h in enumerate(current):
            if (level, idx) in wanted:
                kept[(level, idx)] = h
        current = [merkle.node_hash(current[i], current[i + 1]) for i in range(0, len(current) - 1, 2)]
        level += 1

    def root(n: int) -> bytes:
        return merkle.combine_subtrees([kept[k] for k in merkle.complete_subtrees(0, n)])

    if root(size) != bytes(latest.root_hash):
        problems.append(f"leaf records do not reproduce the signed root hash of tree size {size}")
    if deep:
        for row in _rows(
            session, select(Checkpoint).where(col(Checkpoint.size) < size).order_by(col(Checkpoint.size))
        ):
            problems += _signed(verifier, row)
            if row.size and root(row.size) != bytes(row.root_hash):
                problems.append(f"checkpoint {row.size} is not consistent with the stored log")
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems
