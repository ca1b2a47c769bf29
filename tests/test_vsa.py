"""VSA v1 exactly per spec, checked with the in-toto attestation Python bindings (issue 16.4)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

from attest.errors import SchemaError
from attest.keys import generate_private_key
from attest.predicates import VERIFICATION_SUMMARY_V1, validate_predicate
from attest.signing import KeySigner
from attest.vsa import DEFAULT_POLICY_URI, file_locators, sign_vsa, vsa_predicate

MODEL = "sha256:" + "ab" * 32
POLICY = "sha256:" + "cd" * 32
BUNDLE = "sha256:" + "ef" * 32


def assert_spec_vsa(statement: dict[str, Any]) -> None:
    """Validate a VSA statement with the in-toto bindings (Statement + ResourceDescriptor + the VSA
    v1 protobuf). Lenient where the bindings are wrong: in-toto-attestation 0.9.3 declares
    ``verified_levels`` a single string (``string verified_levels = 6``) while the SLSA spec makes
    ``verifiedLevels`` an array of SlsaResult, so that one field is checked here by hand; and our
    extension field ``reasons`` (allowed by the in-toto parsing rules) is set aside before the strict
    parse, so any *other* unknown or mistyped field still fails."""
    subjects = [ResourceDescriptor(name=s["name"], digest=s["digest"]).pb for s in statement["subject"]]
    st = Statement(subjects, statement["predicateType"], statement["predicate"])
    st.validate()
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == VERIFICATION_SUMMARY_V1
    predicate = dict(statement["predicate"])
    levels = predicate.pop("verifiedLevels")
    assert isinstance(levels, list) and levels and all(isinstance(x, str) and x for x in levels)
    # SlsaResult: FAILED, SLSA_<TRACK>_LEVEL_<N>, or a custom value that does not start with SLSA_
    assert all(
        x == "FAILED" or not x.startswith("SLSA_") or re.fullmatch(r"SLSA_[A-Z]+_LEVEL_\d", x) for x in levels
    )
    predicate.pop("reasons", None)
    vsa = json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())  # strict: unknown fields fail
    assert vsa.verifier.id and vsa.resource_uri and vsa.verification_result in {"PASSED", "FAILED"}
    assert vsa.policy.uri and vsa.time_verified.seconds > 0  # an RFC 3339 Timestamp the binding parsed
    for rd in predicate.get("inputAttestations", []):
        ResourceDescriptor(uri=rd.get("uri", ""), digest=rd.get("digest")).validate()
        assert set(rd["digest"]) == {"sha256"} and len(rd["digest"]["sha256"]) == 64


def _decision(allowed: bool = True, evidence: int = 1) -> dict[str, Any]:
    return {
        "allowed": allowed,
        "modelDigest": MODEL,
        "policyDigest": POLICY,
        "reasons": [] if allowed else [{"code": "MISSING_ATTESTATION", "message": "no manifest"}],
        "evidence": [{"predicateType": "https://model-attest.dev/model-manifest/v1", "bundleDigest": BUNDLE}][
            :evidence
        ],
    }


def _statement(bundle: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])))


def test_signed_vsa_is_spec_clean() -> None:
    signer = KeySigner(generate_private_key("ecdsa-p256"))
    bundle = sign_vsa(
        signer,
        _decision(),
        "acme/llama",
        policy_uri="prod",
        input_uris={BUNDLE: "https://registry.test/v1/attestations/7"},
        now=datetime(2026, 11, 29, 12, 0, 1, tzinfo=UTC),
    )
    st = _statement(bundle)
    assert_spec_vsa(st)
    assert st["subject"] == [{"name": "acme/llama", "digest": {"sha256": "ab" * 32}}]
    p = st["predicate"]
    assert p["policy"] == {"uri": "prod", "digest": {"sha256": "cd" * 32}}
    assert p["inputAttestations"] == [
        {"uri": "https://registry.test/v1/attestations/7", "digest": {"sha256": "ef" * 32}}
    ]
    assert p["verifiedLevels"] == ["MODEL_ATTEST_POLICY_PASSED"] and p["verificationResult"] == "PASSED"
    assert p["timeVerified"] == "2026-11-29T12:00:01Z"
    assert p["resourceUri"] == f"model:acme/llama@{MODEL}"


def test_failed_verdict_and_defaults() -> None:
    p = vsa_predicate(_decision(allowed=False, evidence=0), "model:x")
    assert p["verificationResult"] == "FAILED" and p["verifiedLevels"] == ["FAILED"]
    assert p["policy"]["uri"] == DEFAULT_POLICY_URI and p["inputAttestations"] == []
    st = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "acme/x", "digest": {"sha256": "ab" * 32}}],
        "predicateType": VERIFICATION_SUMMARY_V1,
        "predicate": p,
    }
    assert_spec_vsa(st)
    # evidence without a known locator still names the bundle by digest (a valid ResourceDescriptor)
    p = vsa_predicate(_decision(), "model:x")
    assert p["inputAttestations"] == [{"digest": {"sha256": "ef" * 32}}]


@pytest.mark.parametrize(
    "change",
    [
        {"policy": {}},  # what the registry used to emit
        {"verifiedLevels": "MODEL_ATTEST_POLICY_PASSED"},  # a string, not an array
        {"verifiedLevels": []},
        {"timeVerified": "yesterday"},
        {"timeVerified": "2026-11-29 12:00"},
        {"inputAttestations": [{}]},
        {"policy": {"digest": {"sha256": "not hex"}}},
        {"verificationResult": "OK"},
    ],
)
def test_schema_rejects_what_the_spec_forbids(change: dict[str, Any]) -> None:
    good = vsa_predicate(_decision(), "model:x", policy_uri="prod")
    validate_predicate(VERIFICATION_SUMMARY_V1, good)
    with pytest.raises(SchemaError):
        validate_predicate(VERIFICATION_SUMMARY_V1, good | change)


def test_the_bindings_catch_what_the_old_predicate_got_wrong() -> None:
    """The lenient check is still a check: the old shape (inputAttestations' uri a predicate type is
    fine for the binding, but ``verifiedLevels`` as a string and a non-RFC 3339 time are not)."""
    p = vsa_predicate(_decision(), "model:x", policy_uri="prod")
    st = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "acme/x", "digest": {"sha256": "ab" * 32}}],
        "predicateType": VERIFICATION_SUMMARY_V1,
        "predicate": p | {"timeVerified": "2026-13-45T00:00:00Z"},
    }
    with pytest.raises(json_format.ParseError):
        assert_spec_vsa(st)
    with pytest.raises(AssertionError):
        assert_spec_vsa(st | {"predicate": p | {"verifiedLevels": "PASSED"}})
    with pytest.raises(json_format.ParseError):
        assert_spec_vsa(st | {"predicate": p | {"policyy": {"uri": "x"}}})


def test_file_locators(tmp_path: Path) -> None:
    doc = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "x": 1}
    f = tmp_path / "m.sigstore.json"
    f.write_text(json.dumps(doc, indent=4))  # formatting does not change the bundle digest
    (tmp_path / "junk.json").write_text("{nope")
    import rfc8785

    want = "sha256:" + hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
    assert file_locators([f, tmp_path / "junk.json", tmp_path / "missing"]) == {want: f.resolve().as_uri()}
