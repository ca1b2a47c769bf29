"""in-toto Statement v1 with a model as subject.

The statement is serialised once, with RFC 8785, and those exact bytes are what gets signed and
stored: nothing downstream re-serialises a signed payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from attest.errors import VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class Subject:
    name: str
    digest: dict[str, str]


@dataclass(frozen=True)
class Statement:
    """A parsed statement; ``raw`` are the exact signed bytes."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]
    raw: bytes

    def subject_sha256s(self) -> set[str]:
        return {s.digest["sha256"].lower() for s in self.subjects if "sha256" in s.digest}


def strip_algorithm(digest: str) -> str:
    """``sha256:<hex>`` -> ``<hex>``; a bare hex digest passes through."""
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def build_statement(name: str, digest: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    """Serialise a statement about one model (``digest``: ``sha256:<hex>`` or hex)."""
    doc: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": strip_algorithm(digest)}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return bytes(rfc8785.dumps(doc))


def parse_statement(raw: bytes) -> Statement:
    """Parse and structurally check a statement; raise ``VerificationError`` on anything off."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise VerificationError("payload is not a JSON object")
    if doc.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"statement _type is {doc.get('_type')!r}, expected {STATEMENT_TYPE}")
    subjects_raw = doc.get("subject")
    if not isinstance(subjects_raw, list) or not subjects_raw:
        raise VerificationError("statement has no subject")
    subjects = []
    for s in subjects_raw:
        if not (isinstance(s, dict) and isinstance(s.get("digest"), dict)):
            raise VerificationError("statement subject is malformed")
        digest = {str(k): str(v) for k, v in s["digest"].items()}
        subjects.append(Subject(str(s.get("name", "")), digest))
    ptype = doc.get("predicateType")
    if not isinstance(ptype, str):
        raise VerificationError("statement has no predicateType")
    predicate = doc.get("predicate", {})
    if not isinstance(predicate, dict):
        raise VerificationError("statement predicate is not an object")
    return Statement(tuple(subjects), ptype, predicate, raw)
