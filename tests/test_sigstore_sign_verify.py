"""Keyless signing and verification end to end against the loopback Sigstore domain.

Every variant (Rekor v1 + SET, Rekor v1 + TSA, Rekor v2 + TSA) goes through sigstore-python's real
code paths via the project's API and CLI, and every bundle produced is also verified by sigstore-js.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest._sigstore import SigstoreSigner, resolve_identity_token
from attest.errors import SigningError, UsageError, VerificationError
from attest.manifest import compute_manifest
from attest.predicates import REVOCATION_V1
from attest.verifying import IdentityRule, Trust, verify_bundle
from tests.core_fixtures import RunAttest, make_model
from tests.jsverify import js_verify
from tests.sigstore_domain import VARIANTS
from tests.sigstore_fixtures import (
    SIGNER_IDENTITY,
    RunningDomain,
    SignedSet,
    keyless_trust,
    sign_keyless,
)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_api_bundle_verifies_and_names_signer(
    variant: str, keyless_signed: SignedSet, sigstore_domain: RunningDomain, js_verifier: None
) -> None:
    doc = keyless_signed.doc(variant)
    vm = doc["verificationMaterial"]
    # the bundle really has the shape of its variant (else the variant tests prove nothing)
    entry = vm["tlogEntries"][0]
    assert entry["kindVersion"] == (
        {"kind": "hashedrekord", "version": "0.0.2"}
        if variant == "rekor2-tsa"
        else {"kind": "dsse", "version": "0.0.1"}
    )
    assert ("inclusionPromise" in entry) == variant.startswith("rekor1")
    assert bool(vm.get("timestampVerificationData", {}).get("rfc3161Timestamps")) == variant.endswith("tsa")
    assert entry["inclusionProof"]["hashes"], "the log held an earlier entry: the proof must not be empty"

    trust = keyless_trust(sigstore_domain.trust_configs[variant], issuer=sigstore_domain.issuer)
    att = verify_bundle(json.dumps(doc), trust, expected_digest=keyless_signed.digest)
    assert att.signer.identity == SIGNER_IDENTITY
    assert att.signer.issuer == sigstore_domain.issuer
    assert att.statement.subject_sha256s() == {keyless_signed.digest.removeprefix("sha256:")}

    js = js_verify(
        keyless_signed.bundles[variant], sigstore_domain.trusted_root, SIGNER_IDENTITY, sigstore_domain.issuer
    )
    assert js["subjectAlternativeName"] == SIGNER_IDENTITY


def test_bare_trusted_root_file_is_accepted(
    keyless_signed: SignedSet, sigstore_domain: RunningDomain
) -> None:
    """Verifiers usually hold only a trusted_root.json, not a full ClientTrustConfig."""
    trust = keyless_trust(sigstore_domain.trusted_root, issuer=sigstore_domain.issuer)
    att = verify_bundle(keyless_signed.bundles["rekor2-tsa"].read_bytes(), trust, keyless_signed.digest)
    assert att.signer.identity == SIGNER_IDENTITY


def test_identity_regex_policy(
    keyless_signed: SignedSet, sigstore_domain: RunningDomain, js_verifier: None
) -> None:
    path = keyless_signed.bundles["rekor1-set"]
    ok = Trust(
        identities=[IdentityRule(sigstore_domain.issuer, identity_regex=r"publisher@example\.test")],
        trust_config=sigstore_domain.trusted_root,
    )
    assert verify_bundle(path.read_bytes(), ok).signer.identity == SIGNER_IDENTITY
    partial = Trust(
        identities=[IdentityRule(sigstore_domain.issuer, identity_regex="publisher")],
        trust_config=sigstore_domain.trusted_root,
    )
    with pytest.raises(VerificationError, match="matches /publisher/"):
        verify_bundle(path.read_bytes(), partial)  # full match, not search
    js = js_verify(
        path, sigstore_domain.trusted_root, identity_regex=r"^publisher@", issuer=sigstore_domain.issuer
    )
    assert js["issuer"] == sigstore_domain.issuer


def test_any_of_several_trusted_identities(keyless_signed: SignedSet, sigstore_domain: RunningDomain) -> None:
    trust = Trust(
        identities=[
            IdentityRule(sigstore_domain.issuer, identity="someone-else@example.test"),
            IdentityRule(sigstore_domain.issuer, identity=SIGNER_IDENTITY),
        ],
        trust_config=sigstore_domain.trusted_root,
    )
    assert (
        verify_bundle(keyless_signed.bundles["rekor1-tsa"].read_bytes(), trust).signer.identity
        == SIGNER_IDENTITY
    )


def test_keyless_bundle_without_trusted_identity_is_refused(
    keyless_signed: SignedSet, sigstore_domain: RunningDomain
) -> None:
    with pytest.raises(VerificationError, match="no trusted identity"):
        verify_bundle(
            keyless_signed.bundles["rekor1-set"].read_bytes(),
            Trust(trust_config=sigstore_domain.trusted_root),
        )


def test_other_predicate_type_signs_keyless(
    sigstore_domain: RunningDomain, tmp_path: Path, js_verifier: None
) -> None:
    model = make_model(tmp_path / "m")
    digest = compute_manifest(model).digest
    predicate = {"revokedDigest": digest, "reason": "weights leaked", "revokedOn": "2026-11-27T13:00:00Z"}
    doc = sign_keyless(
        sigstore_domain, "rekor2-tsa", model, predicate_type=REVOCATION_V1, predicate=predicate
    )
    trust = keyless_trust(sigstore_domain.trusted_root, issuer=sigstore_domain.issuer)
    att = verify_bundle(json.dumps(doc), trust, digest)
    assert att.predicate_type == REVOCATION_V1
    assert att.predicate["reason"] == "weights leaked"
    path = tmp_path / "rev.sigstore.json"
    path.write_text(json.dumps(doc))
    js_verify(path, sigstore_domain.trusted_root, SIGNER_IDENTITY, sigstore_domain.issuer)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cli_sign_and_verify(
    variant: str, sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path, js_verifier: None
) -> None:
    model = make_model(tmp_path / "model")
    bundle = tmp_path / "b.sigstore.json"
    tc = sigstore_domain.trust_configs[variant]
    result = run_attest(
        "sign",
        model,
        "--identity-token",
        sigstore_domain.token(),
        "--trust-config",
        tc,
        "-o",
        bundle,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["modelDigest"] == compute_manifest(model).digest
    base = (
        "verify",
        model,
        "--bundle",
        bundle,
        "--trust-config",
        tc,
        "--issuer",
        sigstore_domain.issuer,
        "--json",
    )
    result = run_attest(*base, "--identity", SIGNER_IDENTITY)
    assert result.returncode == 0, result.stdout + result.stderr
    decision = json.loads(result.stdout)
    assert decision["allowed"] is True
    assert decision["evidence"][0]["signer"] == {
        "kind": "sigstore",
        "identity": SIGNER_IDENTITY,
        "issuer": sigstore_domain.issuer,
    }
    result = run_attest(*base, "--identity-regex", r".*@example\.test")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_attest(*base, "--identity", "mallory@example.test")
    assert result.returncode == 1
    assert "do not match mallory@example.test" in result.stdout
    js_verify(bundle, sigstore_domain.trusted_root, SIGNER_IDENTITY, sigstore_domain.issuer)


def test_cli_token_from_environment(
    sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path
) -> None:
    import os

    model = make_model(tmp_path / "model")
    env = {**os.environ, "SIGSTORE_ID_TOKEN": sigstore_domain.token("ci-bot@example.test")}
    tc = sigstore_domain.trust_configs["rekor1-set"]
    result = run_attest("sign", model, "--trust-config", tc, "-o", tmp_path / "b.json", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    trust = keyless_trust(tc, identity="ci-bot@example.test", issuer=sigstore_domain.issuer)
    assert verify_bundle(json.dumps(doc), trust).signer.identity == "ci-bot@example.test"


def test_cli_usage_errors(sigstore_domain: RunningDomain, run_attest: RunAttest, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    result = run_attest("verify", model, "--bundle", tmp_path / "x.json", "--identity", "a@b.test")
    assert result.returncode == 2
    assert "error: --identity/--identity-regex need --issuer" in result.stderr
    result = run_attest(
        "verify", model, "--bundle", tmp_path / "x", "--identity-regex", "(", "--issuer", "https://i"
    )
    assert result.returncode == 2
    assert "not a valid regular expression" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run_attest("sign", model, "--identity-token", sigstore_domain.token(), "--trust-config", bad)
    assert result.returncode == 2
    assert "cannot read trust config" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_identity_token_is_a_clear_signing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    for var in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "GOOGLE_SERVICE_ACCOUNT_NAME", "BUILDKITE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SigningError, match="no OIDC identity token: pass --identity-token"):
        resolve_identity_token(None, interactive=False)


def test_unusable_tokens_are_refused_before_signing(sigstore_domain: RunningDomain) -> None:
    tc = sigstore_domain.trust_configs["rekor1-set"]
    with pytest.raises(SigningError, match="unusable"):
        SigstoreSigner("not-a-jwt", tc, interactive=False)
    expired = sigstore_domain.domain.mint_token(SIGNER_IDENTITY, lifetime=-60)
    with pytest.raises(SigningError, match="unusable"):
        SigstoreSigner(expired, tc, interactive=False)
    wrong_aud = sigstore_domain.domain.mint_token(SIGNER_IDENTITY, audience="not-sigstore")
    with pytest.raises(SigningError, match="unusable"):
        SigstoreSigner(wrong_aud, tc, interactive=False)


def test_fulcio_refuses_a_token_it_did_not_issue(sigstore_domain: RunningDomain, tmp_path: Path) -> None:
    """A token from a foreign issuer is well-formed for the client but Fulcio refuses it."""
    foreign = sigstore_domain.domain.mint_token(SIGNER_IDENTITY, issuer="https://evil.test")
    signer = SigstoreSigner(foreign, sigstore_domain.trust_configs["rekor1-set"], interactive=False)
    with pytest.raises(SigningError, match="Sigstore signing failed"):
        signer.sign_statement(b'{"_type": "https://in-toto.io/Statement/v1"}')


def test_trust_config_errors_are_usage_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError, match=r"^cannot read trust config .*nope\.json"):
        SigstoreSigner("x", missing, interactive=False)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}')
    with pytest.raises(UsageError, match="cannot load Sigstore trust config"):
        SigstoreSigner("x", wrong, interactive=False)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_key_bundles_verify_with_sigstore_js(
    algorithm: str, run_attest: RunAttest, tmp_path: Path, js_verifier: None
) -> None:
    """Key bundles from `attest sign --key` must verify in sigstore-js too (by hint, no log)."""
    bundle, pub = _key_signed(run_attest, tmp_path, algorithm)
    assert js_verify(bundle, public_key_pem=pub)["ok"] is True
    other = tmp_path / "other"
    assert run_attest("keygen", "--out", other, "--algorithm", algorithm).returncode == 0
    with pytest.raises(AssertionError, match="SIGNATURE_ERROR"):
        js_verify(bundle, public_key_pem=Path(f"{other}.pub"))


def test_p384_key_bundles_are_refused_by_sigstore_js(
    run_attest: RunAttest, tmp_path: Path, js_verifier: None
) -> None:
    """Known interop gap, pinned so a fix on either side is noticed.

    `attest sign --key` signs P-384 with ECDSA-SHA384 (the Sigstore key details PKIX_ECDSA_P384_SHA_384);
    sigstore-js 4.1.3 verifies DSSE with ``crypto.verify(undefined, ...)``, i.e. Node's default SHA-256,
    so it refuses every P-384 key bundle. The project's own verifier accepts them (tested elsewhere).
    """
    bundle, pub = _key_signed(run_attest, tmp_path, "ecdsa-p384")
    with pytest.raises(AssertionError, match="SIGNATURE_ERROR"):
        js_verify(bundle, public_key_pem=pub)


def _key_signed(run_attest: RunAttest, tmp_path: Path, algorithm: str) -> tuple[Path, Path]:
    model = make_model(tmp_path / "model")
    prefix = tmp_path / "k"
    assert run_attest("keygen", "--out", prefix, "--algorithm", algorithm).returncode == 0
    bundle = tmp_path / "b.sigstore.json"
    result = run_attest("sign", model, "--key", f"{prefix}.key", "-o", bundle)
    assert result.returncode == 0, result.stderr
    pub = Path(f"{prefix}.pub")
    result = run_attest("verify", model, "--bundle", bundle, "--key", pub)
    assert result.returncode == 0, result.stdout + result.stderr
    return bundle, pub


def test_signed_payload_is_exactly_the_statement_bytes(
    sigstore_domain: RunningDomain, tmp_path: Path
) -> None:
    """Sign the bytes you serialize: the envelope carries the RFC 8785 statement bytes unchanged."""
    import base64

    from attest.predicates import MODEL_MANIFEST_V1
    from attest.signing import manifest_predicate
    from attest.statement import build_statement

    manifest = compute_manifest(make_model(tmp_path / "m"))
    predicate = manifest_predicate(manifest, "org/tiny")
    statement = build_statement("org/tiny", manifest.digest, MODEL_MANIFEST_V1, predicate)
    signer = SigstoreSigner(
        sigstore_domain.token(), sigstore_domain.trust_configs["rekor2-tsa"], interactive=False
    )
    assert signer.identity == SIGNER_IDENTITY
    doc = signer.sign_statement(statement)
    assert base64.b64decode(doc["dsseEnvelope"]["payload"]) == statement
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"


def test_constitution_binding_and_vsa_sign_keyless(
    keyless_signed: SignedSet, sigstore_domain: RunningDomain, tmp_path: Path, js_verifier: None
) -> None:
    """Predicates built by other parts of the project go through the same keyless signer."""
    from attest.constitution import binding_predicate
    from attest.model_verification import verify_model
    from attest.predicates import CONSTITUTION_BINDING_V1, VERIFICATION_SUMMARY_V1
    from attest.vsa import sign_vsa

    trust = keyless_trust(sigstore_domain.trusted_root, issuer=sigstore_domain.issuer)
    binding = binding_predicate(
        b"# Rules\n\nBe helpful.\n", name="tiny-constitution", version="1", relationship="system-prompt"
    )
    doc = sign_keyless(
        sigstore_domain,
        "rekor1-tsa",
        keyless_signed.model,
        predicate_type=CONSTITUTION_BINDING_V1,
        predicate=binding,
    )
    att = verify_bundle(json.dumps(doc), trust, keyless_signed.digest)
    assert att.predicate["relationship"] == "system-prompt"

    decision = verify_model(keyless_signed.model, [keyless_signed.bundles["rekor1-set"]], trust)
    assert decision.allowed, decision.reasons
    signer = SigstoreSigner(
        sigstore_domain.token("registry@example.test"),
        sigstore_domain.trust_configs["rekor2-tsa"],
        interactive=False,
    )
    vsa = sign_vsa(signer, decision, "org/tiny")
    vsa_trust = keyless_trust(
        sigstore_domain.trusted_root, identity="registry@example.test", issuer=sigstore_domain.issuer
    )
    att = verify_bundle(json.dumps(vsa), vsa_trust, keyless_signed.digest)
    assert att.predicate_type == VERIFICATION_SUMMARY_V1
    assert att.predicate["verificationResult"] == "PASSED"
    for name, bundle, identity in (("binding", doc, SIGNER_IDENTITY), ("vsa", vsa, "registry@example.test")):
        path = tmp_path / f"{name}.sigstore.json"
        path.write_text(json.dumps(bundle))
        js_verify(path, sigstore_domain.trusted_root, identity, sigstore_domain.issuer)


def test_certificate_identity_reads_issuer_v1_or_v2_extension() -> None:
    """Fulcio writes the issuer twice (legacy raw string, and DER UTF8String); either alone suffices."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from attest._sigstore import _der_utf8_string, certificate_identity
    from tests.sigstore_domain.pki import OIDC_ISSUER_V2_OID

    long_issuer = "https://" + "i" * 200 + ".test"  # > 127 bytes: DER long length form
    der = b"\x0c\x81" + bytes([len(long_issuer)]) + long_issuer.encode()
    assert _der_utf8_string(der) == long_issuer
    assert _der_utf8_string(b"\x04\x03abc") is None  # an OCTET STRING is not an issuer
    assert _der_utf8_string(b"\x0c\x05abc") is None  # truncated

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("https://ci.test/wf")]), True
        )
        .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, der), False)
        .sign(key, hashes.SHA256())
    )
    assert certificate_identity(cert) == (["https://ci.test/wf"], long_issuer)
