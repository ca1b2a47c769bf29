"""Reading the log's entries: lookups, queries with stable cursors, and the JSON every answer carries.

Every entry served comes with its inclusion proof against one checkpoint, read once per request, so
a client can check all results against a single signed tree head. Queries walk indexes that end in
``log_index`` and page with ``log_index > cursor``: cost depends on the page, not the store.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from attest._internal import merkle
from attest._internal.log_leaf import rfc3339
from attest.errors import UsageError
from registry.log import NotFoundError, TransparencyLog
from registry.models import Checkpoint, Entry, EntrySubject
from registry.validation import MAX_INT, MAX_PREDICATE_TYPE, MAX_SIGNER, check_name, check_text


@dataclass(frozen=True)
class Query:
    subject_digest: str | None = None
    name: str | None = None
    predicate_type: str | None = None
    signer: str | None = None
    since: int | None = None  # Unix seconds, inclusive
    until: int | None = None  # Unix seconds, exclusive
    cursor: str | None = None
    limit: int = 100
    include_bundle: bool = False


def encode_cursor(log_index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": log_index}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if len(cursor) > 200:  # a real cursor is ~30 characters
        raise UsageError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise UsageError("invalid cursor") from None
    if isinstance(after, bool) or not isinstance(after, int) or not -1 <= after <= MAX_INT:
        raise UsageError("invalid cursor")
    return after


def normalise_digest(digest: str) -> str:
    d = digest.strip().lower()
    if not d.startswith("sha256:"):
        d = "sha256:" + d
    hexpart = d.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise UsageError(f"{digest[:80]!r} is not a sha256 digest (sha256:<64 hex>)")
    return d


def subjects_of(session: Session, log_indices: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in log_indices}
    if not log_indices:
        return out
    rows = session.exec(select(EntrySubject).where(col(EntrySubject.log_index).in_(log_indices))).all()
    for r in rows:
        out[r.log_index].append({"name": r.name, "digest": r.digest})
    return out


def render_entry(
    log: TransparencyLog,
    session: Session,
    entry: Entry,
    checkpoint: Checkpoint,
    subjects: list[dict[str, Any]] | None = None,
    include_bundle: bool = True,
    proof: list[bytes] | None = None,
) -> dict[str, Any]:
    """An entry as the API serves it, with its inclusion proof against ``checkpoint``."""
    if proof is None:
        proof = log.inclusion_proof(
            session,
            entry.log_index,
            checkpoint.size,
            checkpoint.root_hash,
            merkle.leaf_hash(entry.leaf.encode()),
        )
    leaf = json.loads(entry.leaf)
    doc: dict[str, Any] = {
        "id": entry.bundle_digest,
        "logIndex": entry.log_index,
        "integratedTime": rfc3339(entry.integrated_time),
        "predicateType": entry.predicate_type,
        "subjects": subjects if subjects is not None else leaf["subjects"],
        "signer": leaf["signer"],
        "namespace": entry.namespace,
        "bundleDigest": entry.bundle_digest,
        "envelopeDigest": entry.envelope_digest,
        "envelopeSize": entry.envelope_size,
        "leaf": entry.leaf,
        "inclusionProof": {
            "logIndex": entry.log_index,
            "treeSize": checkpoint.size,
            "rootHash": checkpoint.root_hash.hex(),
            "hashes": [h.hex() for h in proof],
            "checkpoint": checkpoint.note,
        },
    }
    if include_bundle:
        doc["bundle"] = json.loads(entry.bundle)
    return doc


def render_entries(
    log: TransparencyLog,
    session: Session,
    rows: list[Entry],
    checkpoint: Checkpoint,
    subjects: dict[int, list[dict[str, Any]]] | None = None,
    include_bundle: bool = True,
) -> list[dict[str, Any]]:
    """Several entries against one checkpoint; their proofs' nodes come from one query."""
    proofs = log.inclusion_proofs(
        session,
        [r.log_index for r in rows],
        checkpoint.size,
        checkpoint.root_hash,
        {r.log_index: merkle.leaf_hash(r.leaf.encode()) for r in rows},
    )
    return [
        render_entry(
            log,
            session,
            r,
            checkpoint,
            (subjects or {}).get(r.log_index),
            include_bundle,
            proofs[r.log_index],
        )
        for r in rows
    ]


def get_entry(session: Session, log_index: int | None = None, bundle_digest: str | None = None) -> Entry:
    if log_index is not None:
        row = session.get(Entry, log_index)
    else:
        row = session.exec(select(Entry).where(Entry.bundle_digest == bundle_digest)).first()
    if row is None:
        raise NotFoundError("no such entry")
    return row


def run_query(log: TransparencyLog, session: Session, q: Query, max_limit: int) -> dict[str, Any]:
    """Answer a query: a page of entries, each proven against the same (latest) checkpoint."""
    if q.name is not None:
        check_name(q.name, "name")
    if q.predicate_type is not None:
        check_text(q.predicate_type, "predicateType", MAX_PREDICATE_TYPE)
    if q.signer is not None:
        check_text(q.signer, "signer", MAX_SIGNER)
    checkpoint = log.checkpoint(session)
    limit = max(1, min(q.limit, max_limit))
    after = decode_cursor(q.cursor) if q.cursor else -1
    stmt = select(Entry).where(col(Entry.log_index) > after, col(Entry.log_index) < checkpoint.size)
    if q.subject_digest or q.name:
        sub = select(EntrySubject.log_index)
        if q.subject_digest:
            sub = sub.where(EntrySubject.digest == normalise_digest(q.subject_digest))
        if q.name:
            sub = sub.where(EntrySubject.name == q.name)
        stmt = stmt.where(col(Entry.log_index).in_(sub))
    if q.predicate_type:
        stmt = stmt.where(Entry.predicate_type == q.predicate_type)
    if q.signer:
        stmt = stmt.where(Entry.signer == q.signer)
    if q.since is not None:
        stmt = stmt.where(col(Entry.integrated_time) >= q.since)
    if q.until is not None:
        stmt = stmt.where(col(Entry.integrated_time) < q.until)
    rows = list(session.exec(stmt.order_by(col(Entry.log_index)).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    subjects = subjects_of(session, [r.log_index for r in rows])
    return {
        "entries": render_entries(log, session, rows, checkpoint, subjects, q.include_bundle),
        "checkpoint": checkpoint.note,
        "treeSize": checkpoint.size,
        "nextCursor": encode_cursor(rows[-1].log_index) if more and rows else None,
    }


def model_page(session: Session, namespace: str, name: str) -> dict[str, Any]:
    """The versions (digests) of ``namespace/name`` and which attestations each has."""
    full = check_name(f"{namespace}/{name}", "model name")
    rows = session.exec(
        select(  # type: ignore[call-overload]
            EntrySubject.digest, Entry.log_index, Entry.predicate_type, Entry.integrated_time, Entry.signer
        )
        .join(Entry, col(Entry.log_index) == col(EntrySubject.log_index))
        .where(EntrySubject.name == full)
        .order_by(col(Entry.log_index))
    ).all()
    if not rows:
        raise NotFoundError(f"no attestations for model {full}")
    versions: dict[str, dict[str, Any]] = {}
    for digest, idx, ptype, when, signer in rows:
        v = versions.setdefault(digest, {"digest": digest, "firstSeen": rfc3339(when), "attestations": []})
        v["attestations"].append(
            {"logIndex": idx, "predicateType": ptype, "integratedTime": rfc3339(when), "signer": signer}
        )
    return {"name": full, "versions": list(versions.values())}
