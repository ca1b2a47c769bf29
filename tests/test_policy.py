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
def test_malformed_policies_are_usage_errors(mutate: Any, message: str) -> None:
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


# ---- k-of-n, revocation authority, VSA pins, dates that overflow (issue 12, issue 16 point 3) ------
AUDITOR = SignerIdentity(key_fingerprint="sha256:" + "22" * 32)
SCAN_OK = {"result": "PASSED", "scanFinishedOn": "2026-11-01T00:00:00Z"}


def two_of_two(**extra: Any) -> Policy:
    return Policy.from_document(
        {
            "apiVersion": "model-attest.dev/policy/v1",
            "signers": {"publisher": [{"key": PUBLISHER}], "auditor": [{"key": AUDITOR.key_fingerprint}]},
            "require": [
                {
                    "predicateType": BACKDOOR_SCAN_V1,
                    "signedBy": ["publisher", "auditor"],
                    "threshold": 2,
                    **extra,
                }
            ],
        }
    )


def test_threshold_counts_distinct_signers() -> None:
    policy = two_of_two()
    one = evaluate(policy, [att(BACKDOOR_SCAN_V1, SCAN_OK, PUB)], MODEL, now=NOW)
    assert not one.allowed and [r.code for r in one.reasons] == ["THRESHOLD_NOT_MET"]
    twice = [att(BACKDOOR_SCAN_V1, SCAN_OK, PUB), att(BACKDOOR_SCAN_V1, {**SCAN_OK, "x": 1}, PUB)]
    assert [r.code for r in evaluate(policy, twice, MODEL, now=NOW).reasons] == ["THRESHOLD_NOT_MET"]
    both = evaluate(
        policy,
        [att(BACKDOOR_SCAN_V1, SCAN_OK, PUB), att(BACKDOOR_SCAN_V1, {**SCAN_OK, "by": "auditor"}, AUDITOR)],
        MODEL,
        now=NOW,
    )
    assert both.allowed and len(both.evidence) == 2
    # a failing attestation is no vote: one PASSED + one FAILED is still one signer
    mixed = [
        att(BACKDOOR_SCAN_V1, SCAN_OK, PUB),
        att(BACKDOOR_SCAN_V1, {**SCAN_OK, "result": "FAILED"}, AUDITOR),
    ]
    assert [r.code for r in evaluate(policy, mixed, MODEL, now=NOW).reasons] == ["THRESHOLD_NOT_MET"]
    assert Policy.from_document(POLICY).requirements[0].threshold == 1  # old policies: one signer


@pytest.mark.parametrize(
    "require,message",
    [
        (
            {"predicateType": BACKDOOR_SCAN_V1, "signedBy": ["publisher"], "threshold": 2},
            "exceeds the 1 signers",
        ),
        ({"predicateType": BACKDOOR_SCAN_V1, "threshold": 2}, "threshold needs signedBy"),
        ({"predicateType": BACKDOOR_SCAN_V1, "threshold": 0}, "threshold"),
        ({"predicateType": BACKDOOR_SCAN_V1, "maxAgeDays": 1e300}, "maxAgeDays"),
        (
            {"predicateType": "https://slsa.dev/verification_summary/v1", "signedBy": ["publisher"]},
            "must pin",
        ),
    ],
)
def test_impossible_requirements_are_policy_errors(require: dict[str, Any], message: str) -> None:
    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": PUBLISHER}]},
        "require": [require],
    }
    with pytest.raises(PolicyError, match=message):
        Policy.from_document(doc)


def test_revocation_needs_authority_over_the_manifest() -> None:
    """The scanner is trusted, but not for the model's manifest: its revocation is ignored."""
    rev = {"revokedDigest": MODEL, "reason": "x", "revokedOn": "2026-11-26T00:00:00Z"}
    policy = Policy.from_document(POLICY)
    assert policy.revocation_roles() == {"publisher"}
    assert decide([*good(), att(REVOCATION_V1, rev, SCANNER)]) == set()
    with_revokers = {
        **POLICY,
        "signers": {**POLICY["signers"], "revokers": [{"key": AUDITOR.key_fingerprint}]},
    }
    decision = evaluate(
        Policy.from_document(with_revokers), [*good(), att(REVOCATION_V1, rev, AUDITOR)], MODEL, now=NOW
    )
    assert [r.code for r in decision.reasons] == ["REVOKED"]


@pytest.mark.parametrize("when", ["9999-12-31T23:30:00-05:00", "0001-01-01T00:10:00+05:00", "not a date"])
def test_dates_out_of_range_are_undated_not_a_crash(when: str) -> None:
    atts = good()
    atts[1] = att(BACKDOOR_SCAN_V1, {"result": "PASSED", "scanFinishedOn": when}, SCANNER)
    assert decide(atts) == {"ATTESTATION_UNDATED"}


def test_vsa_pins_policy_digest_and_uri() -> None:
    from attest.predicates import VERIFICATION_SUMMARY_V1 as VSA

    pinned = "sha256:" + "ab" * 32
    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"registry": [{"key": PUBLISHER}]},
        "require": [
            {"predicateType": VSA, "signedBy": ["registry"], "policyDigest": pinned, "policyUri": "prod"}
        ],
    }
    policy = Policy.from_document(doc)

    def summary(digest: str, uri: str, result: str = "PASSED") -> VerifiedAttestation:
        return att(
            VSA, {"verificationResult": result, "policy": {"uri": uri, "digest": {"sha256": digest}}}, PUB
        )

    assert evaluate(policy, [summary("ab" * 32, "prod")], MODEL, now=NOW).allowed
    for wrong in (
        summary("ef" * 32, "prod"),
        summary("ab" * 32, "dev"),
        att(VSA, {"verificationResult": "PASSED"}, PUB),
    ):
        assert [r.code for r in evaluate(policy, [wrong], MODEL, now=NOW).reasons] == ["VSA_POLICY_MISMATCH"]
    # a PASSED VSA for another policy does not help, but one for the pinned policy among them does
    assert evaluate(policy, [summary("ef" * 32, "prod"), summary("ab" * 32, "prod")], MODEL, now=NOW).allowed


def test_decision_json_reports_rejected_bundles() -> None:
    from attest.evidence import Rejected

    decision = evaluate(Policy.from_document(POLICY), good(), MODEL, now=NOW)
    decision.rejected = [Rejected("junk.json", "BUNDLE_UNVERIFIED", "bundle is not JSON")]
    out = decision.to_json()
    assert out["allowed"] is True
    assert out["rejected"] == [
        {"bundle": "junk.json", "code": "BUNDLE_UNVERIFIED", "message": "bundle is not JSON"}
    ]
    assert out["warnings"] == ["ignored junk.json: BUNDLE_UNVERIFIED: bundle is not JSON"]


def _oms(ignore_paths: Any) -> VerifiedAttestation:
    from attest.predicates import OMS_SIGNATURE_V1

    serialization = {"method": "files", "hash_type": "sha256", "ignore_paths": ignore_paths}
    return att(OMS_SIGNATURE_V1, {"serialization": serialization, "resources": []}, PUB)


@pytest.mark.parametrize(
    "ignore_paths,denied",
    [
        ([".git", ".gitattributes", ".github", ".gitignore", "model.sig"], False),
        (["./model.sig", "release.sigstore.json", ".git/"], False),
        (["NOTES.txt"], True),
        ([".git", "weights/model.sig"], True),  # the signature file counts only at the top
        (["sub/x.sigstore.json"], True),
        (["model.sig/extra"], True),
        ("model.sig", True),  # malformed: not a list
    ],
)
def test_forbid_ignores_covers_oms_ignore_paths(ignore_paths: Any, denied: bool) -> None:
    """``forbidIgnores`` applies to OpenSSF signatures: ignore paths beyond the OMS defaults deny."""
    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": PUBLISHER}]},
        "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"], "forbidIgnores": True}],
    }
    decision = evaluate(Policy.from_document(doc), [_oms(ignore_paths)], MODEL, now=NOW)
    assert decision.allowed is not denied, decision.to_json()
    if denied:
        assert [r.code for r in decision.reasons] == ["IGNORES_FORBIDDEN"]
    lenient = {**doc, "require": [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}]}
    assert evaluate(Policy.from_document(lenient), [_oms(ignore_paths)], MODEL, now=NOW).allowed


def test_deeply_nested_policy_document_is_a_policy_error(tmp_path: Path) -> None:
    """RecursionError in the YAML parser was an internal error; it is a bad policy."""
    policy = tmp_path / "deep.yaml"
    policy.write_text("{a: " * 5000 + "1" + "}" * 5000)
    with pytest.raises(PolicyError, match="nested too deeply"):
        Policy.load(policy)
