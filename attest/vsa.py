"""SLSA Verification Summary Attestations: a signed verdict other controllers can admit on.

A verifier that has checked a model against a policy signs one statement saying so — naming the policy
digest and every attestation it relied on — so a downstream admission controller needs to verify one
signature instead of repeating the whole evaluation. The subject is the model digest, like every
other attestation of the project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from attest.policy import Decision
from attest.predicates import VERIFICATION_SUMMARY_V1, validate_predicate
from attest.signing import Signer
from attest.statement import build_statement

VERIFIER_ID = "https://model-attest.dev/verifier/v1"


def vsa_predicate(
    decision: dict[str, Any], resource_uri: str, verifier_id: str = VERIFIER_ID, policy_uri: str | None = None
) -> dict[str, Any]:
    """The VSA predicate for a decision (``Decision.to_json()``): PASSED when allowed, else FAILED."""
    policy: dict[str, Any] = {}
    if policy_uri:
        policy["uri"] = policy_uri
    if decision.get("policyDigest"):
        policy["digest"] = {"sha256": decision["policyDigest"].split(":", 1)[1]}
    predicate = {
        "verifier": {"id": verifier_id},
        "timeVerified": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resourceUri": resource_uri,
        "policy": policy,
        "inputAttestations": [
            {"uri": e["predicateType"], "digest": {"sha256": e["bundleDigest"].split(":", 1)[1]}}
            for e in decision.get("evidence", [])
        ],
        "verificationResult": "PASSED" if decision["allowed"] else "FAILED",
        "verifiedLevels": ["MODEL_ATTEST_POLICY_PASSED"] if decision["allowed"] else [],
        "reasons": decision.get("reasons", []),
    }
    validate_predicate(VERIFICATION_SUMMARY_V1, predicate)
    return predicate


def sign_vsa(
    signer: Signer, decision: Decision | dict[str, Any], model_name: str, **kwargs: Any
) -> dict[str, Any]:
    """Sign the verdict as a bundle whose subject is the model digest."""
    doc = decision.to_json() if isinstance(decision, Decision) else decision
    digest = doc["modelDigest"]
    predicate = vsa_predicate(doc, resource_uri=f"model:{model_name}@{digest}", **kwargs)
    return signer.sign_statement(build_statement(model_name, digest, VERIFICATION_SUMMARY_V1, predicate))
