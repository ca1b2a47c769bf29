"""Policy decisions over verified attestations: every reason code can be produced and is needed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attest.errors import PolicyError
from attest.policy import Policy, evaluate
from attest.predicates import (
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    MODEL_MANIFEST_V1,
    REVOCATION_V1,
)
from attest.statement import Statement, Subject
from attest.verifying import SignerIdentity, VerifiedAttestation

MODEL = "sha256:" + "ab" * 32
PUBLISHER = "sha256:" + "11" * 32
SCANNER_ID = "https://github.com/acme/scanner/.github/workflows/scan.yml@refs/heads/main"
GH = "https://token.actions.githubusercontent.com"
CONSTITUTION = "cd" * 32
NOW = datetime(2026, 11, 27, tzinfo=UTC)

POLICY: dict[str, Any] = {
    "apiVersion": "model-attest.dev/policy/v1",
    "signers": {
        "publisher": [{"key": PUBLISHER}],
        "scanner": [{"identityRegex": r"^https://github\.com/acme/scanner/.*$", "issuer": GH}],
    },
    "require": [
        {"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]},
        {"predicateType": BACKDOOR_SCAN_V1, "signedBy": ["scanner"], "maxAgeDays": 90},
        {"predicateType": COMPLIANCE_ASSESSMENT_V1, "signedBy": ["publisher"], "jurisdictions": ["EU"]},
        {
            "predicateType": CONSTITUTION_BINDING_V1,
            "approvedConstitutions": [f"sha256:{CONSTITUTION}"],
            "relationships": ["trained-with"],
        },
    ],
}


def att(
    ptype: str, predicate: dict[str, Any], signer: SignerIdentity, digest: str = MODEL
) -> VerifiedAttestation:
    stmt = Statement((Subject("org/m", {"sha256": digest.split(":")[1]}),), ptype, predicate, b"")
    return VerifiedAttestation(stmt, signer, f"sha256:{hash((ptype, str(predicate))) & 0xFFFF:064x}", "", {})


PUB = SignerIdentity(key_fingerprint=PUBLISHER)
SCANNER = SignerIdentity(identity=SCANNER_ID, issuer=GH)
STRANGER = SignerIdentity(key_fingerprint="sha256:" + "99" * 32)


def good() -> list[VerifiedAttestation]:
    return [
        att(MODEL_MANIFEST_V1, {"files": []}, PUB),
        att(BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2026-11-01T00:00:00Z"}, SCANNER),
        att(
            COMPLIANCE_ASSESSMENT_V1,
            {
                "evaluationDate": "2026-11-20",
                "findings": [
                    {"ruleId": "eu-art50", "jurisdiction": "EU", "status": "satisfied"},
                    {"ruleId": "cn-label", "jurisdiction": "CN", "status": "not-satisfied"},
                ],
            },
            PUB,
        ),
        att(
            CONSTITUTION_BINDING_V1,
            {"relationship": "trained-with", "constitution": {"canonicalDigest": {"sha256": CONSTITUTION}}},
            PUB,
        ),
    ]


def decide(atts: list[VerifiedAttestation]) -> set[str]:
    decision = evaluate(Policy.from_document(POLICY), atts, MODEL, now=NOW)
    assert decision.allowed == (not decision.reasons)
    return {r.code for r in decision.reasons}


def test_all_requirements_met_allows() -> None:
    decision = evaluate(Policy.from_document(POLICY), good(), MODEL, now=NOW)
    assert decision.allowed and len(decision.evidence) == 4
    assert decision.policy_digest and decision.policy_digest.startswith("sha256:")


def test_missing_attestation_denied() -> None:
    assert decide(good()[:1] + good()[2:]) == {"MISSING_ATTESTATION"}


def test_scan_from_untrusted_signer_denied() -> None:
    atts = good()
    atts[1] = att(BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2026-11-01T00:00:00Z"}, STRANGER)
    assert decide(atts) == {"UNTRUSTED_SIGNER"}


def test_scan_signed_by_wrong_role_denied() -> None:
    atts = good()
    atts[1] = att(BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2026-11-01T00:00:00Z"}, PUB)
    assert decide(atts) == {"UNTRUSTED_SIGNER"}


def test_failed_scan_denied() -> None:
    atts = good()
    atts[1] = att(BACKDOOR_SCAN_V1, {"result": "FAILED", "scanFinishedOn": "2026-11-01T00:00:00Z"}, SCANNER)
    assert decide(atts) == {"SCAN_NOT_PASSED"}


def test_stale_scan_denied_and_boundary() -> None:
    atts = good()
    atts[1] = att(
        BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2026-08-28T00:00:00Z"}, SCANNER
    )  # 91 days
    assert decide(atts) == {"ATTESTATION_STALE"}
    atts[1] = att(
        BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2026-08-29T00:00:00Z"}, SCANNER
    )  # 90 days
    assert decide(atts) == set()


def test_future_dated_attestation_does_not_satisfy_an_age_requirement() -> None:
    atts = good()
    atts[1] = att(BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": "2027-06-01T00:00:00Z"}, SCANNER)
    assert decide(atts) == {"ATTESTATION_FROM_FUTURE"}


def test_not_satisfied_finding_in_required_jurisdiction_denied() -> None:
    atts = good()
    atts[2] = att(
        COMPLIANCE_ASSESSMENT_V1,
        {
            "evaluationDate": "2026-11-20",
            "findings": [{"ruleId": "eu-art50", "jurisdiction": "EU", "status": "not-satisfied"}],
        },
        PUB,
    )
    assert decide(atts) == {"COMPLIANCE_NOT_SATISFIED"}


def test_unapproved_constitution_denied() -> None:
    atts = good()
    atts[3] = att(
        CONSTITUTION_BINDING_V1,
        {"relationship": "trained-with", "constitution": {"canonicalDigest": {"sha256": "ee" * 32}}},
        PUB,
    )
    assert decide(atts) == {"CONSTITUTION_NOT_APPROVED"}
    atts[3] = att(
        CONSTITUTION_BINDING_V1,
        {"relationship": "system-prompt", "constitution": {"canonicalDigest": {"sha256": CONSTITUTION}}},
        PUB,
    )
    assert decide(atts) == {"CONSTITUTION_RELATIONSHIP"}


def test_revocation_denies() -> None:
    revoked = att(
        REVOCATION_V1,
        {"revokedDigest": MODEL, "reason": "key leaked", "revokedOn": "2026-11-26T00:00:00Z"},
        PUB,
    )
    assert decide([*good(), revoked]) == {"REVOKED"}
    # a revocation by a stranger is ignored; one for another model does not apply
    assert (
        decide(
            [
                *good(),
                att(
                    REVOCATION_V1,
                    {"revokedDigest": MODEL, "reason": "x", "revokedOn": "2026-11-26T00:00:00Z"},
                    STRANGER,
                ),
            ]
        )
        == set()
    )
    other = att(
        REVOCATION_V1,
        {"revokedDigest": "sha256:" + "00" * 32, "reason": "x", "revokedOn": "2026-11-26T00:00:00Z"},
        PUB,
    )
    assert decide([*good(), other]) == set()


def test_second_good_candidate_is_used_after_a_bad_one() -> None:
    bad = att(BACKDOOR_SCAN_V1, {"result": "FAILED", "scanFinishedOn": "2026-11-01T00:00:00Z"}, SCANNER)
    assert decide([bad, *good()]) == set()


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda p: p.update(apiVersion="v0"), "apiVersion"),
        (lambda p: p["require"][0].update(signedBy=["nobody"]), "unknown role 'nobody'"),
        (lambda p: p["signers"].update(publisher=[{"key": "md5:123"}]), "signers"),
        (lambda p: p.update(extra=1), "extra"),
    ],
)
def test_malformed_policies_are_usage_errors(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    import copy

    doc = copy.deepcopy(POLICY)
    mutate(doc)
    with pytest.raises(PolicyError, match=message):
        Policy.from_document(doc)


def test_policy_file_with_key_file(tmp_path: Path) -> None:
    from attest.keys import write_key_pair

    fp = write_key_pair(tmp_path / "k")
    (tmp_path / "p.yaml").write_text(
        "apiVersion: model-attest.dev/policy/v1\nsigners:\n  publisher:\n    - keyFile: k.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n"
    )
    policy = Policy.load(tmp_path / "p.yaml")
    assert fp in policy.trust().keys
    assert policy.roles_of(SignerIdentity(key_fingerprint=fp)) == {"publisher"}
