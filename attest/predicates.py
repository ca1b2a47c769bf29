"""The predicate types model-attest knows, each bound to its JSON Schema in ``schemas/``.

Verifiers refuse a predicate type they do not know (fail closed) and validate every predicate they
accept; unknown *fields* inside a known predicate are allowed, as in-toto's parsing rules require.

One validator for every caller: the signers (``attest.signing``, scans, compliance, bindings, VSAs),
the registry's publish check, the verifier and the document loaders (policy, profile, rule pack) all
go through ``validate_document``. It asserts the ``date-time`` format, which JSON Schema otherwise
treats as a mere annotation, so signing refuses exactly what the registry would refuse.

The one lenient caller is the verifier (``check_formats=False``): a bundle another tool signed with
a sloppy time still verifies, and the policy engine then decides whether the time matters (an
unreadable date never satisfies an age requirement: ``ATTESTATION_UNDATED``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from attest.errors import SchemaError, VerificationError
from schemas import load_schema

MODEL_MANIFEST_V1 = "https://model-attest.dev/model-manifest/v1"
BACKDOOR_SCAN_V1 = "https://model-attest.dev/backdoor-scan/v1"
COMPLIANCE_ASSESSMENT_V1 = "https://model-attest.dev/compliance-assessment/v1"
CONSTITUTION_BINDING_V1 = "https://model-attest.dev/constitution-binding/v1"
REVOCATION_V1 = "https://model-attest.dev/revocation/v1"
VERIFICATION_SUMMARY_V1 = "https://slsa.dev/verification_summary/v1"
# OpenSSF model-signing v1.0 signatures, accepted for interoperability (see attest/oms.py).
OMS_SIGNATURE_V1 = "https://model_signing/signature/v1.0"


@dataclass(frozen=True)
class PredicateType:
    uri: str
    schema: str  # file name stem in schemas/
    title: str


_REGISTRY: dict[str, PredicateType] = {}


def register(uri: str, schema: str, title: str) -> PredicateType:
    """Make a predicate type known to signers and verifiers. Idempotent for the same definition."""
    pt = PredicateType(uri, schema, title)
    existing = _REGISTRY.get(uri)
    if existing is not None and existing != pt:
        raise ValueError(f"predicate type {uri} registered twice with different definitions")
    _REGISTRY[uri] = pt
    return pt


for _uri, _schema, _title in (
    (MODEL_MANIFEST_V1, "model-manifest-v1", "model manifest"),
    (BACKDOOR_SCAN_V1, "backdoor-scan-v1", "backdoor scan"),
    (COMPLIANCE_ASSESSMENT_V1, "compliance-assessment-v1", "compliance assessment"),
    (CONSTITUTION_BINDING_V1, "constitution-binding-v1", "constitution binding"),
    (REVOCATION_V1, "revocation-v1", "revocation"),
    (VERIFICATION_SUMMARY_V1, "verification-summary-v1", "verification summary (SLSA VSA)"),
    (OMS_SIGNATURE_V1, "oms-signature-v1", "OpenSSF model-signing v1.0 signature"),
):
    register(_uri, _schema, _title)


def get(uri: str) -> PredicateType:
    try:
        return _REGISTRY[uri]
    except KeyError:
        raise VerificationError(f"unknown predicate type {uri!r}") from None


def known() -> list[PredicateType]:
    return sorted(_REGISTRY.values(), key=lambda p: p.uri)


def validate_predicate(uri: str, predicate: Any, *, check_formats: bool = True) -> None:
    """Raise ``SchemaError`` naming the first violation if ``predicate`` does not fit its schema.

    ``check_formats``: assert ``format: date-time`` (the default; see the module docstring).
    """
    validate_document(get(uri).schema, predicate, what=f"predicate {uri}", check_formats=check_formats)


# RFC 3339 ``date-time`` (section 5.6): a full date, a time, and a mandatory offset. ASCII digits only.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII)


def check_rfc3339(value: object) -> bool:
    """JSON Schema ``format: date-time``: RFC 3339 with an offset, representable in UTC.

    Stricter than ``datetime.fromisoformat`` (which takes "2026-01-01", a missing offset, or a space
    for ``T``) and needs no extra package (jsonschema's own checker wants ``rfc3339-validator``).
    A time whose UTC instant falls outside years 1..9999 is refused: nothing downstream could
    compare it. Non-strings pass, as JSON Schema formats constrain strings only.
    """
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


# Only the formats listed here are asserted; any other ``format`` stays an annotation.
FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(check_rfc3339)


@cache
def _validator(schema_name: str, check_formats: bool) -> Draft202012Validator:
    """A compiled validator per schema (schemas are immutable package data)."""
    return Draft202012Validator(load_schema(schema_name), format_checker=FORMATS if check_formats else None)


def validate_document(schema_name: str, document: Any, what: str, *, check_formats: bool = True) -> None:
    """Validate any document against ``schemas/<schema_name>.schema.json`` with a one-line error.

    With ``check_formats`` (the default) ``format: date-time`` is asserted (``check_rfc3339``): a scan
    "finished" on "yesterday" is refused before it is signed, and by the registry at publish.
    """
    error = best_match(_validator(schema_name, check_formats).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(f"{what} is invalid at {where}: {error.message}")
