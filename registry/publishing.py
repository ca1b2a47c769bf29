"""Accepting an attestation: verify, authorise, then store and log it in one transaction.

Order matters for "a refused request changes nothing": everything that can refuse (size, JSON,
signature and trust, predicate schema, namespace coverage, signer binding) runs before the
sequencer transaction opens, and the transaction itself only writes. A bundle already in the log is
answered with its existing entry (200) — but only after the same checks, so a replay by someone
without the right gets the same refusal as a new bundle would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from attest._internal import merkle
from attest._internal.log_leaf import leaf_record
from attest.errors import AttestError, VerificationError
from attest.predicates import REVOCATION_V1, validate_predicate
from attest.verifying import VerifiedAttestation, verify_bundle
from registry.auth import ForbiddenError, Principal, namespace_of, signer_bound, signer_key
from registry.entries import render_entry
from registry.models import Entry, EntrySubject
from registry.state import Registry
from registry.validation import MAX_NAME, MAX_SIGNER, check_digest_set, check_name

log = logging.getLogger("registry.publish")


class PayloadTooLarge(AttestError):
    http_status = 413


class UnprocessableBundle(VerificationError):
    """A bundle that verified but cannot be placed in the registry (e.g. a subject without namespace)."""


class QuotaExceeded(AttestError):
    """The namespace published its quota for the current window: 429 with ``Retry-After``."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def statement_digest(att: VerifiedAttestation) -> str:
    """sha256 of the signed statement bytes: the same statement re-wrapped with extra signatures (or
    a different certificate chain) has a new bundle digest but this same value."""
    return "sha256:" + hashlib.sha256(att.statement.raw).hexdigest()


def check_attestation(att: VerifiedAttestation) -> None:
    """Refuse, before anything is stored, what would store differently on SQLite and PostgreSQL or
    mislead a reader: malformed subject digests and names, over-long signers, unparseable dates (the
    predicate validator that signers use, with ``format: date-time`` asserted)."""
    for s in att.statement.subjects:
        check_digest_set(s.digest)
        try:
            check_name(s.name, "subject name", MAX_NAME)
        except AttestError as exc:
            raise UnprocessableBundle(exc.message) from None
    who, issuer = signer_key(att.signer)
    if len(who) > MAX_SIGNER or len(issuer) > MAX_SIGNER:
        raise UnprocessableBundle(f"signer identity is longer than {MAX_SIGNER} characters")
    validate_predicate(att.predicate_type, att.predicate)


# Serialises sequencer transactions inside one process, so threads queue here instead of spinning on
# SQLite's busy handler; the database lock still serialises separate processes and workers.
_SEQUENCER = threading.Lock()


def subject_rows(att: VerifiedAttestation) -> list[tuple[str, str]]:
    """(digest, name) index rows: every sha256 subject, plus the revoked digest of a revocation."""
    rows: dict[str, str] = {}
    for s in att.statement.subjects:
        if "sha256" in s.digest:
            rows.setdefault("sha256:" + s.digest["sha256"], s.name)
    if not rows:
        raise UnprocessableBundle("statement has no sha256 subject")
    if att.predicate_type == REVOCATION_V1:
        revoked = str(att.predicate.get("revokedDigest", ""))
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
        "statement_digest": statement_digest(att),
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
    last = session.exec(select(func.max(Entry.log_index))).one()
    if (last if last is not None else -1) != first - 1:
        raise reg.log.mark_broken(
            f"log truncated or overfilled: the signed tree has {first} entries, the last stored is {last}"
        )
    values = [entry_values(att, ns, first + i, now) for i, (att, ns, _) in enumerate(items)]
    appended, _ = reg.log.append_many(session, [v["leaf_hash"] for v in values])
    if appended != first:
        raise reg.log.mark_broken("log size changed inside the sequencer transaction")
    session.execute(insert(Entry), values)
    subjects = [
        {"log_index": v["log_index"], "digest": d, "name": n}
        for v, (_, _, pairs) in zip(values, items, strict=True)
        for d, n in pairs
    ]
    session.execute(insert(EntrySubject), subjects)
    return [v["log_index"] for v in values]


def check_revocation_authority(session: Session, att: VerifiedAttestation, namespace: str) -> None:
    """A revocation is accepted only from the namespace that published the revoked digest.

    The caller already proved it holds a token for ``namespace`` and that the signer is bound to it;
    here the namespace must itself have logged an attestation (other than a revocation) about the
    revoked digest. Anyone else's revocation of somebody's model is a 403 and appends nothing.
    """
    if att.predicate_type != REVOCATION_V1:
        return
    revoked = str(att.predicate.get("revokedDigest", ""))
    owned = session.exec(
        select(Entry.log_index)
        .join(EntrySubject, col(EntrySubject.log_index) == col(Entry.log_index))
        .where(
            EntrySubject.digest == revoked,
            Entry.namespace == namespace,
            Entry.predicate_type != REVOCATION_V1,
        )
        .limit(1)
    ).first()
    if owned is None:
        raise ForbiddenError(
            f"namespace {namespace!r} has not published {revoked}: only its publisher may revoke it"
        )


def _check_quota(reg: Registry, session: Session, namespace: str, now: int) -> None:
    """Per-namespace publish quota over a sliding window, counted in the database (exact across
    workers; runs inside the sequencer transaction, so concurrent publishes cannot both slip in)."""
    quota, window = reg.settings.namespace_publish_quota, reg.settings.namespace_quota_window_s
    if quota <= 0:
        return
    since = now - window
    count, oldest = session.exec(
        select(func.count(), func.min(Entry.integrated_time)).where(
            Entry.namespace == namespace, col(Entry.integrated_time) > since
        )
    ).one()
    if int(count) >= quota:
        retry = max(1, int(oldest) + window - now + 1)
        reg.metrics.quota_refused.inc()
        raise QuotaExceeded(
            f"namespace {namespace!r} published {count} attestations in {window} s, its quota is {quota}",
            retry,
        )


def _existing(session: Session, att: VerifiedAttestation) -> int | None:
    """The log index of this bundle, or of the same statement from the same signer, if stored."""
    found = session.exec(select(Entry.log_index).where(Entry.bundle_digest == att.bundle_digest)).first()
    if found is not None:
        return int(found)
    who, issuer = signer_key(att.signer)
    same_issuer = Entry.signer_issuer == issuer if issuer else col(Entry.signer_issuer).is_(None)
    same = session.exec(
        select(Entry.log_index)
        .where(Entry.statement_digest == statement_digest(att), Entry.signer == who, same_issuer)
        .order_by(col(Entry.log_index))
        .limit(1)
    ).first()
    return int(same) if same is not None else None


def publish(reg: Registry, principal: Principal, body: bytes) -> tuple[dict[str, Any], bool]:
    """Verify and store one bundle; return (entry JSON with proof and checkpoint, created?).

    A bundle already stored, or the same statement from the same signer in another envelope (extra
    signatures riding along), is answered with the existing entry and ``created`` False.
    """
    if len(body) > reg.settings.max_bundle_bytes:
        raise PayloadTooLarge(f"bundle is {len(body)} bytes, the limit is {reg.settings.max_bundle_bytes}")
    reg.log.ensure_intact()
    att = verify_bundle(body, reg.trust)
    check_attestation(att)
    namespace = namespace_for(att)
    if not principal.covers(namespace):
        raise ForbiddenError(f"token does not cover namespace {namespace!r}")
    with reg.db.read_session() as session:
        if not signer_bound(session, namespace, att.signer):
            raise ForbiddenError(f"signer {att.signer} is not bound to namespace {namespace!r}")
        check_revocation_authority(session, att, namespace)
    subjects = subject_rows(att)
    with _SEQUENCER, reg.db.sequencer_session() as session:
        existing = _existing(session, att)
        if existing is None:
            _check_quota(reg, session, namespace, int(time.time()))
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
