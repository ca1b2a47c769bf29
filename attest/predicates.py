"""The predicate types model-attest knows, each bound to its JSON Schema in ``schemas/``.

Verifiers refuse a predicate type they do not know (fail closed) and validate every predicate they
accept; unknown *fields* inside a known predicate are allowed, as in-toto's parsing rules require.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
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


def validate_predicate(uri: str, predicate: Any) -> None:
    """Raise ``SchemaError`` naming the first violation if ``predicate`` does not fit its schema."""
    validate_document(get(uri).schema, predicate, what=f"predicate {uri}")


def validate_document(schema_name: str, document: Any, what: str) -> None:
    """Validate any document against ``schemas/<schema_name>.schema.json`` with a one-line error."""
    validator = Draft202012Validator(load_schema(schema_name))
    error = best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(f"{what} is invalid at {where}: {error.message}")
