"""The one verifier: bundle -> verified statement, for the CLI, the Python API, the guard and the registry.

A statement is returned only after every check has passed: bundle structure, signature against trusted
material (a trusted key, or a Sigstore certificate chain, log proof and identity), ``payloadType``,
statement ``_type``, the subject digest (when the caller knows the model), and the predicate schema.
Any exception raised underneath, of whatever type, becomes a ``VerificationError``: fail closed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from securesystemslib.signer import Signature, SSlibKey

from attest.bundle import ParsedBundle, bundle_digest, envelope_digest, pae, parse_bundle
from attest.errors import AttestError, VerificationError
from attest.keys import fingerprint, spki_der, spki_pem
from attest.predicates import validate_predicate
from attest.statement import PAYLOAD_TYPE, Statement, parse_statement, strip_algorithm


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed: a key fingerprint, or a Sigstore certificate identity (SAN) and OIDC issuer."""

    key_fingerprint: str | None = None
    identity: str | None = None
    issuer: str | None = None

    @property
    def kind(self) -> str:
        return "key" if self.key_fingerprint else "sigstore"

    def __str__(self) -> str:
        if self.key_fingerprint:
            return f"key {self.key_fingerprint}"
        return f"{self.identity} (issuer {self.issuer})"

    def to_json(self) -> dict[str, str]:
        if self.key_fingerprint:
            return {"kind": "key", "keyFingerprint": self.key_fingerprint}
        return {"kind": "sigstore", "identity": self.identity or "", "issuer": self.issuer or ""}


@dataclass(frozen=True)
class IdentityRule:
    """A trusted Sigstore identity: exact SAN or a full-match regular expression, plus the issuer."""

    issuer: str
    identity: str | None = None
    identity_regex: str | None = None

    def matches(self, signer: SignerIdentity) -> bool:
        if signer.issuer != self.issuer or signer.identity is None:
            return False
        if self.identity is not None:
            return signer.identity == self.identity
        return (
            self.identity_regex is not None and re.fullmatch(self.identity_regex, signer.identity) is not None
        )

    def __str__(self) -> str:
        return f"{self.identity or '/' + str(self.identity_regex) + '/'} (issuer {self.issuer})"


@dataclass
class Trust:
    """What a verifier accepts: trusted keys by fingerprint, Sigstore identities, and trust roots.

    ``trust_config``: a Sigstore ClientTrustConfig / trusted-root JSON for private deployments;
    without it the public-good root is used (``offline`` = the root embedded in sigstore-python).
    """

    keys: dict[str, PublicKeyTypes] = field(default_factory=dict)
    identities: list[IdentityRule] = field(default_factory=list)
    trust_config: Path | None = None
    offline: bool = False
    staging: bool = False
    # CA certificates (cryptography ``x509.Certificate``) that certificate-signed OMS bundles chain to.
    certificate_anchors: list[Any] = field(default_factory=list)

    def add_key(self, key: PublicKeyTypes) -> str:
        fp = fingerprint(key)
        self.keys[fp] = key
        return fp

    def trusts(self, signer: SignerIdentity) -> bool:
        if signer.key_fingerprint is not None:
            return signer.key_fingerprint in self.keys
        return any(rule.matches(signer) for rule in self.identities)


@dataclass(frozen=True)
class VerifiedAttestation:
    """A statement whose signature, signer, subject and predicate all verified."""

    statement: Statement
    signer: SignerIdentity
    bundle_digest: str
    envelope_digest: str
    bundle: dict[str, Any]

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement.predicate

    def evidence(self) -> dict[str, Any]:
        return {
            "predicateType": self.predicate_type,
            "bundleDigest": self.bundle_digest,
            "signer": self.signer.to_json(),
            "subjects": sorted(self.statement.subject_sha256s()),
        }


def _candidate_keys(parsed: ParsedBundle, trust: Trust) -> list[tuple[str, PublicKeyTypes]]:
    """Trusted keys the bundle's hint names (DER- or PEM-SPKI sha256, as sigstore and OMS write it).

    The hint only orders the search: a signature is accepted solely if a *trusted* key verifies it.
    """
    hint = parsed.key_hint.lower()
    named: list[tuple[str, PublicKeyTypes]] = []
    others: list[tuple[str, PublicKeyTypes]] = []
    for fp, key in trust.keys.items():
        hints = {hashlib.sha256(spki_der(key)).hexdigest(), hashlib.sha256(spki_pem(key)).hexdigest()}
        (named if hint in hints else others).append((fp, key))
    return named + others


def _verify_key_signature(parsed: ParsedBundle, trust: Trust) -> SignerIdentity:
    if not trust.keys:
        raise VerificationError("bundle is key-signed but no trusted public key was given")
    message = pae(parsed.payload_type, parsed.payload)
    for fp, key in _candidate_keys(parsed, trust):
        sslib_key = SSlibKey.from_crypto(key, keyid=fp)
        for sig in parsed.signatures:
            try:
                sslib_key.verify_signature(Signature(fp, sig.sig.hex()), message)
            except Exception:
                continue
            return SignerIdentity(key_fingerprint=fp)
    raise VerificationError("signature does not verify with any trusted key")


def _verify_keyless(parsed: ParsedBundle, trust: Trust) -> SignerIdentity:
    from attest._sigstore import verify_keyless_bundle

    payload, signer = verify_keyless_bundle(parsed.document, trust)
    if payload != parsed.payload:
        raise VerificationError("verified payload differs from the bundle's envelope")
    return signer


def verify_bundle(
    raw: bytes | str | dict[str, Any], trust: Trust, expected_digest: str | None = None
) -> VerifiedAttestation:
    """Verify one bundle. ``expected_digest`` (``sha256:<hex>``) is the model the caller holds."""
    try:
        return _verify_bundle(raw, trust, expected_digest)
    except AttestError:
        raise
    except Exception as exc:
        raise VerificationError(f"verification failed: {type(exc).__name__}: {exc}") from None


def _verify_bundle(
    raw: bytes | str | dict[str, Any], trust: Trust, expected_digest: str | None
) -> VerifiedAttestation:
    import json

    parsed = parse_bundle(json.dumps(raw) if isinstance(raw, dict) else raw)
    if parsed.payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"payloadType is {parsed.payload_type!r}, expected {PAYLOAD_TYPE}")
    if parsed.is_key_bundle:
        signer = _verify_key_signature(parsed, trust)
    elif parsed.is_certificate_bundle:  # a private X.509 chain, no log (OpenSSF model-signing)
        from attest.oms import verify_certificate_signature

        signer = verify_certificate_signature(parsed, trust)
    else:
        signer = _verify_keyless(parsed, trust)
    if not trust.trusts(signer):
        raise VerificationError(f"signer {signer} is not trusted")
    statement = parse_statement(parsed.payload)
    if expected_digest is not None:
        want = strip_algorithm(expected_digest).lower()
        if want not in statement.subject_sha256s():
            got = ", ".join(sorted(statement.subject_sha256s())) or "none"
            raise VerificationError(f"subject digest sha256:{got} is not the model digest sha256:{want}")
    # formats stay annotations here: a sloppy time is the policy's to judge (attest.predicates)
    validate_predicate(statement.predicate_type, statement.predicate, check_formats=False)
    return VerifiedAttestation(
        statement, signer, bundle_digest(parsed.document), envelope_digest(parsed.document), parsed.document
    )
