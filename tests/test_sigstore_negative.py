"""The negative matrix of issue 3: each tampered keyless bundle is refused, with a clear message,
by the project's verifier and (where the property is one a bundle verifier can see) by sigstore-js.

Each case starts from a bundle that verifies (checked in ``test_api_bundle_verifies_and_names_signer``)
and changes exactly one thing, so a refusal is attributable to that one security property.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attest.errors import VerificationError
from attest.manifest import compute_manifest
from attest.verifying import verify_bundle
from tests.core_fixtures import make_model
from tests.jsverify import JsRefused, js_verify
from tests.sigstore_fixtures import SIGNER_IDENTITY, RunningDomain, SignedSet, keyless_trust, sign_keyless

Doc = dict[str, Any]


@dataclass
class Ctx:
    """What a case may use: the signed set, both domains, and a scratch directory."""

    signed: SignedSet
    local: RunningDomain
    other: RunningDomain
    tmp: Path


@dataclass(frozen=True)
class Case:
    """One tamper: which variant to start from, how to change it, and the verification settings."""

    variant: str
    tamper: Callable[[Doc, Ctx], Doc]
    project_error: str  # regex the project's one-line message must match
    js_code: str | None  # sigstore-js error code expected; None: not a property sigstore-js can see
    identity: str = SIGNER_IDENTITY
    issuer: str | None = None  # None: the local domain's issuer
    other_root: bool = False  # verify against the other domain's trust root
    expected_digest: Callable[[Ctx], str] | None = None


def _entry(doc: Doc) -> Doc:
    entry: Doc = doc["verificationMaterial"]["tlogEntries"][0]
    return entry


def _same(doc: Doc, ctx: Ctx) -> Doc:
    return doc


def _changed_payload(doc: Doc, ctx: Ctx) -> Doc:
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"]["model"]["name"] = "org/evil"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return doc


def _changed_checkpoint(doc: Doc, ctx: Ctx) -> Doc:
    proof = _entry(doc)["inclusionProof"]
    lines = proof["checkpoint"]["envelope"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree than the log signed
    proof["checkpoint"]["envelope"] = "\n".join(lines)
    return doc


def _strip_timestamps(doc: Doc, ctx: Ctx) -> Doc:
    doc["verificationMaterial"].pop("timestampVerificationData", None)
    return doc


def _foreign_tsa(doc: Doc, ctx: Ctx) -> Doc:
    signature = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    token = ctx.other.domain.tsa.timestamp(signature)  # a well-formed token over the right signature
    doc["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(token).decode()}]
    }
    return doc


def _swapped_set(doc: Doc, ctx: Ctx) -> Doc:
    """The SET of another entry of the same log: validly signed, but not over this entry."""
    other_model = make_model(ctx.tmp / "set-donor")
    donor = sign_keyless(ctx.local, "rekor1-set", other_model)
    _entry(doc)["inclusionPromise"] = _entry(donor)["inclusionPromise"]
    return doc


def _changed_proof_hash(doc: Doc, ctx: Ctx) -> Doc:
    hashes = _entry(doc)["inclusionProof"]["hashes"]
    raw = bytearray(base64.b64decode(hashes[0]))
    raw[0] ^= 0x01
    hashes[0] = base64.b64encode(bytes(raw)).decode()
    return doc


def _time_outside_certificate(doc: Doc, ctx: Ctx) -> Doc:
    """The log (whose key we hold) vouches, with a valid SET, for a time after the certificate expired."""
    import rfc8785

    from tests.sigstore_domain import pki

    entry = _entry(doc)
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 3600)
    payload = {
        "body": entry["canonicalizedBody"],
        "integratedTime": int(entry["integratedTime"]),
        "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
        "logIndex": int(entry["logIndex"]),
    }
    signature = pki.sign(ctx.local.domain.rekor1.key, rfc8785.dumps(payload))
    entry["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(signature).decode()}
    return doc


def _other_model_digest(ctx: Ctx) -> str:
    """The bundle is about ``ctx.signed.model``; the verifier holds a different model."""
    other = make_model(ctx.tmp / "another-model")
    (other / "config.json").write_text('{"model_type": "llama", "hidden_size": 16}\n')
    digest = compute_manifest(other).digest
    assert digest != ctx.signed.digest
    return digest


CASES: dict[str, Case] = {
    "other trust domain": Case(
        "rekor1-set",
        _same,
        r"failed to build timestamp certificate chain",
        "CERTIFICATE_ERROR",
        other_root=True,
    ),
    "wrong identity": Case(
        "rekor1-set",
        _same,
        r"SANs do not match mallory@example\.test",
        "UNTRUSTED_SIGNER_ERROR",
        identity="mallory@example.test",
    ),
    "wrong issuer": Case(
        "rekor2-tsa",
        _same,
        r"OIDCIssuer does not match",
        "UNTRUSTED_SIGNER_ERROR",
        issuer="https://oidc.other.test",
    ),
    "changed payload": Case("rekor1-set", _changed_payload, r"DSSE: invalid signature", "TLOG_BODY_ERROR"),
    "changed checkpoint": Case(
        "rekor1-set", _changed_checkpoint, r"checkpoint: invalid signature", "TLOG_INCLUSION_PROOF_ERROR"
    ),
    "rekor v2, timestamp stripped": Case(
        "rekor2-tsa", _strip_timestamps, r"inclusion promise or signed timestamp", "TIMESTAMP_ERROR"
    ),
    "rekor v2, foreign TSA": Case(
        "rekor2-tsa", _foreign_tsa, r"not enough sources of verified time", "TIMESTAMP_ERROR"
    ),
    "swapped SET": Case(
        "rekor1-set", _swapped_set, r"SET: invalid inclusion promise", "TLOG_INCLUSION_PROMISE_ERROR"
    ),
    "changed inclusion-proof hash (v1)": Case(
        "rekor1-set",
        _changed_proof_hash,
        r"inclusion proof contains invalid root hash",
        "TLOG_INCLUSION_PROOF_ERROR",
    ),
    "changed inclusion-proof hash (v2)": Case(
        "rekor2-tsa",
        _changed_proof_hash,
        r"inclusion proof contains invalid root hash",
        "TLOG_INCLUSION_PROOF_ERROR",
    ),
    "log time outside the certificate's validity": Case(
        "rekor1-set", _time_outside_certificate, r"cert is not valid at validation time", "CERTIFICATE_ERROR"
    ),
    "subject is another model": Case(
        "rekor2-tsa",
        _same,
        r"subject digest .* is not the model digest",
        None,
        expected_digest=_other_model_digest,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tampered_bundle_is_refused(
    name: str,
    keyless_signed: SignedSet,
    sigstore_domain: RunningDomain,
    other_sigstore_domain: RunningDomain,
    tmp_path: Path,
    js_verifier: None,
) -> None:
    case = CASES[name]
    ctx = Ctx(keyless_signed, sigstore_domain, other_sigstore_domain, tmp_path)
    doc = case.tamper(copy.deepcopy(keyless_signed.doc(case.variant)), ctx)
    domain = other_sigstore_domain if case.other_root else sigstore_domain
    issuer = case.issuer or sigstore_domain.issuer
    trust = keyless_trust(domain.trusted_root, identity=case.identity, issuer=issuer)
    expected = case.expected_digest(ctx) if case.expected_digest else keyless_signed.digest

    with pytest.raises(VerificationError) as refused:
        verify_bundle(json.dumps(doc), trust, expected_digest=expected)
    message = refused.value.message
    assert "\n" not in message and "Traceback" not in message
    assert re.search(case.project_error, message), message

    path = tmp_path / "tampered.sigstore.json"
    path.write_text(json.dumps(doc))
    if case.js_code is None:
        # sigstore-js checks signatures, not which model a statement is about: it accepts this one,
        # which is exactly why the project's subject check exists.
        assert js_verify(path, domain.trusted_root, case.identity, issuer)["ok"] is True
        print(f"\nMATRIX | {name} | project: {message} | sigstore-js: accepted (no model to compare)")
        return
    with pytest.raises(JsRefused) as js_refused:
        js_verify(path, domain.trusted_root, case.identity, issuer)
    assert js_refused.value.result["code"] == case.js_code, js_refused.value.result
    print(f"\nMATRIX | {name} | project: {message} | sigstore-js: {js_refused.value.result}")
