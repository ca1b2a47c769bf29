"""Accepting an attestation: verify, authorise, then store and log it in one transaction.

Order matters for "a refused request changes nothing": everything that can refuse (size, JSON,
signature and trust, predicate schema, namespace coverage, signer binding) runs before the
sequencer transaction opens, and the transaction itself only writes. A bundle already in the log is
answered with its existing entry (200) — but only after the same checks, so a replay by someone
without the right gets the same refusal as a new bundle would.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from attest._internal import merkle
from attest._internal.log_leaf import leaf_record
from attest.errors import AttestError, VerificationError
from attest.predicates import REVOCATION_V1
from attest.verifying import VerifiedAttestation, verify_bundle
from registry.auth import ForbiddenError, Principal, namespace_of, signer_bound, signer_key
from registry.entries import render_entry
from registry.log import LogConsistencyError
from registry.models import Entry, EntrySubject
from registry.state import Registry

log = logging.getLogger("registry.publish")


class PayloadTooLarge(AttestError):
    http_status = 413


class UnprocessableBundle(VerificationError):
    """A bundle that verified but cannot be placed in the registry (e.g. a subject without namespace)."""


# Serialises sequencer transactions inside one process, so threads queue here instead of spinning on
# SQLite's busy handler; the database lock still serialises separate processes and workers.
_SEQUENCER = threading.Lock()


def subject_rows(att: VerifiedAttestation) -> list[tuple[str, str]]:
    """(digest, name) index rows: every sha256 subject, plus the revoked digest of a revocation."""
    rows: dict[str, str] = {}
    for s in att.statement.subjects:
        if "sha256" in s.digest:
            rows.setdefault("sha256:" + s.digest["sha256"].lower(), s.name)
    if not rows:
        raise UnprocessableBundle("statement has no sha256 subject")
    if att.predicate_type == REVOCATION_V1:
        revoked = str(att.predicate.get("revokedDigest", "")).lower()
        rows.setdefault(revoked, next(iter(rows.values())))
    return list(rows.items())


def namespace_for(att: VerifiedAttestation) -> str:
    spaces = set()
    for s in att.statement.subjects:
        try:
            spaces.add(namespace_of(s.name))
        except AttestError:
            raise UnprocessableBundle(
                f"subject name {s.name!r} has no namespace (expected org/name)"
            ) from None
    if len(spaces) != 1:
        raise UnprocessableBundle(f"subjects span several namespaces: {', '.join(sorted(spaces))}")
    return spaces.pop()


def entry_values(att: VerifiedAttestation, namespace: str, index: int, now: int) -> dict[str, Any]:
    """The ``entry`` row of an accepted attestation (shared by publish and bulk loading)."""
    who, issuer = signer_key(att.signer)
    leaf = leaf_record(att, now)
    return {
        "log_index": index,
        "bundle_digest": att.bundle_digest,
        "envelope_digest": att.envelope_digest,
        "predicate_type": att.predicate_type,
        "signer": who,
        "signer_issuer": issuer or None,
        "namespace": namespace,
        "integrated_time": now,
        "envelope_size": len(json.dumps(att.bundle.get("dsseEnvelope", {}), separators=(",", ":"))),
        "leaf": leaf.decode(),
        "leaf_hash": merkle.leaf_hash(leaf),
        "bundle": json.dumps(att.bundle, separators=(",", ":"), sort_keys=True),
    }


def store_entries(
    reg: Registry, session: Session, items: list[tuple[VerifiedAttestation, str, list[tuple[str, str]]]]
) -> list[int]:
    """Append already-authorised attestations to the log and store them, inside the sequencer
    transaction; one signed checkpoint covers the batch. Returns their log indices."""
    now = int(time.time())
    first = reg.log.size(session)
    values = [entry_values(att, ns, first + i, now) for i, (att, ns, _) in enumerate(items)]
    appended, _ = reg.log.append_many(session, [v["leaf_hash"] for v in values])
    if appended != first:
        raise LogConsistencyError("log size changed inside the sequencer transaction")
    session.execute(insert(Entry), values)
    subjects = [
        {"log_index": v["log_index"], "digest": d, "name": n}
        for v, (_, _, pairs) in zip(values, items, strict=True)
        for d, n in pairs
    ]
    session.execute(insert(EntrySubject), subjects)
    return [v["log_index"] for v in values]


def publish(reg: Registry, principal: Principal, body: bytes) -> tuple[dict[str, Any], bool]:
    """Verify and store one bundle; return (entry JSON with proof and checkpoint, created?)."""
    if len(body) > reg.settings.max_bundle_bytes:
        raise PayloadTooLarge(f"bundle is {len(body)} bytes, the limit is {reg.settings.max_bundle_bytes}")
    att = verify_bundle(body, reg.trust)
    namespace = namespace_for(att)
    if not principal.covers(namespace):
        raise ForbiddenError(f"token does not cover namespace {namespace!r}")
    with reg.db.read_session() as session:
        if not signer_bound(session, namespace, att.signer):
            raise ForbiddenError(f"signer {att.signer} is not bound to namespace {namespace!r}")
    subjects = subject_rows(att)
    with _SEQUENCER, reg.db.sequencer_session() as session:
        existing = session.exec(
            select(Entry.log_index).where(Entry.bundle_digest == att.bundle_digest)
        ).first()
        if existing is None:
            index = store_entries(reg, session, [(att, namespace, subjects)])[0]
    # Proofs are computed after commit: the node cache must only ever see committed subtrees.
    with reg.db.read_session() as session:
        entry = session.get(Entry, existing if existing is not None else index)
        assert entry is not None
        checkpoint = reg.log.checkpoint(session)
        rendered = render_entry(reg.log, session, entry, checkpoint) | {"checkpoint": checkpoint.note}
    if existing is not None:
        return rendered, False
    reg.metrics.published.inc()
    reg.metrics.log_size.set(checkpoint.size)
    reg.note_log_size(checkpoint.size)
    if att.predicate_type == REVOCATION_V1:
        reg.admission_cache.clear()
    log.info(
        "published",
        extra={
            "fields": {
                "logIndex": index,
                "bundleDigest": att.bundle_digest,
                "predicateType": att.predicate_type,
                "namespace": namespace,
                "signer": str(att.signer),
                "tokenId": principal.token_id,
            }
        },
    )
    return rendered, True
