"""The leaf record of the registry's transparency log, shared by the server (writes) and client (checks).

A leaf is the RFC 8785 JSON of what the log vouches for about one attestation: the envelope and
bundle digests, every subject, the predicate type, the verified signer and the integration time.
A client that fetched a bundle recomputes its digests and checks them against the proven leaf, so
the server can neither swap the bundle nor misreport what it logged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import rfc8785

from attest.bundle import bundle_digest, envelope_digest
from attest.errors import VerificationError
from attest.verifying import VerifiedAttestation

LEAF_KIND = "model-attest.dev/log-entry/v1"


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def leaf_record(att: VerifiedAttestation, integrated_time: int) -> bytes:
    """Canonical leaf bytes for a verified attestation logged at ``integrated_time`` (Unix seconds)."""
    doc: dict[str, Any] = {
        "kind": LEAF_KIND,
        "bundleDigest": att.bundle_digest,
        "envelopeDigest": att.envelope_digest,
        "subjects": [{"name": s.name, "digest": dict(s.digest)} for s in att.statement.subjects],
        "predicateType": att.predicate_type,
        "signer": att.signer.to_json(),
        "integratedTime": rfc3339(integrated_time),
    }
    return bytes(rfc8785.dumps(doc))


def check_leaf(leaf: bytes, bundle: dict[str, Any]) -> dict[str, Any]:
    """Parse a leaf and check that it records exactly this bundle; return the parsed leaf."""
    try:
        doc = json.loads(leaf)
    except ValueError:
        raise VerificationError("log leaf is not JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != LEAF_KIND:
        raise VerificationError("log leaf is not a model-attest log entry")
    if bytes(rfc8785.dumps(doc)) != leaf:
        raise VerificationError("log leaf is not canonical JSON")
    if doc.get("bundleDigest") != bundle_digest(bundle) or doc.get("envelopeDigest") != envelope_digest(
        bundle
    ):
        raise VerificationError("log leaf records a different bundle than the one served")
    return doc
