"""Sigstore bundle v0.3 JSON around a DSSE envelope.

Key-signed bundles follow the layout sigstore-js and OpenSSF model-signing use: ``publicKey.hint``
and no transparency-log entry. The envelope's payload is carried base64-encoded, so the signed bytes
survive any JSON re-formatting of the bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from securesystemslib.dsse import Envelope

from attest.errors import VerificationError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ACCEPTED_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)


@dataclass(frozen=True)
class DsseSignature:
    sig: bytes
    keyid: str


@dataclass(frozen=True)
class ParsedBundle:
    """The parts of a bundle a verifier needs, with the raw JSON kept for sigstore-python."""

    document: dict[str, Any]
    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...]

    @property
    def verification_material(self) -> dict[str, Any]:
        vm: dict[str, Any] = self.document.get("verificationMaterial") or {}
        return vm

    @property
    def is_key_bundle(self) -> bool:
        return "publicKey" in self.verification_material

    @property
    def is_certificate_bundle(self) -> bool:
        """Signed with a private X.509 chain and no log entry (OpenSSF model-signing ``certificate``).

        Sigstore keyless bundles of v0.2 also carry ``x509CertificateChain``, but always with a log
        entry; those go to sigstore-python's verifier instead.
        """
        vm = self.verification_material
        return "x509CertificateChain" in vm and not vm.get("tlogEntries")

    @property
    def key_hint(self) -> str:
        return str((self.verification_material.get("publicKey") or {}).get("hint", ""))


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: the bytes actually signed (securesystemslib's encoder)."""
    return Envelope(payload, payload_type, {}).pae()


def build_key_bundle(payload: bytes, payload_type: str, signature: bytes, key_hint: str) -> dict[str, Any]:
    """A bundle naming its key by hint (sha256 of the DER SPKI here, of the PEM SPKI for OMS)."""
    return build_bundle(payload, payload_type, signature, {"publicKey": {"hint": key_hint}})


def build_certificate_bundle(
    payload: bytes, payload_type: str, signature: bytes, chain_der: list[bytes]
) -> dict[str, Any]:
    """A bundle carrying the signing certificate and its chain (leaf first), as model_signing writes."""
    certs = [{"rawBytes": base64.b64encode(der).decode()} for der in chain_der]
    return build_bundle(payload, payload_type, signature, {"x509CertificateChain": {"certificates": certs}})


def build_bundle(
    payload: bytes, payload_type: str, signature: bytes, material: dict[str, Any]
) -> dict[str, Any]:
    """Bundle v0.3 around one DSSE signature; ``material`` is the key or certificate part, no log."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }


def bundle_digest(document: dict[str, Any]) -> str:
    """A stable identity for a bundle: sha256 of its RFC 8785 form (formatting-independent)."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def envelope_digest(document: dict[str, Any]) -> str:
    """sha256 of the RFC 8785 form of the DSSE envelope alone (what a log records)."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document.get("dsseEnvelope", {}))).hexdigest()


def parse_bundle(raw: bytes | str) -> ParsedBundle:
    """Parse a bundle file's bytes; any structural problem is a ``VerificationError``."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("bundle is not JSON") from None
    if not isinstance(doc, dict):
        raise VerificationError("bundle is not a JSON object")
    media = doc.get("mediaType")
    if media not in ACCEPTED_MEDIA_TYPES:
        raise VerificationError(f"unsupported bundle mediaType {media!r}")
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise VerificationError("bundle holds no DSSE envelope (message signatures are not attestations)")
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        payload_type = str(env["payloadType"])
        sigs = tuple(
            DsseSignature(base64.b64decode(s["sig"], validate=True), str(s.get("keyid", "")))
            for s in env["signatures"]
        )
    except (KeyError, TypeError, binascii.Error):
        raise VerificationError("bundle DSSE envelope is malformed") from None
    if not sigs:
        raise VerificationError("bundle DSSE envelope has no signature")
    return ParsedBundle(doc, payload, payload_type, sigs)
