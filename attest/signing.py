"""Signing attestations: one interface, one implementation per backend.

``Signer.sign_statement`` takes the exact statement bytes and returns a Sigstore bundle v0.3 JSON
object. Local keys sign here through securesystemslib (whose signer family also reaches KMS and HSM
keys); Sigstore keyless signing lives in ``attest._sigstore`` behind the same interface.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from securesystemslib.signer import CryptoSigner

from attest.bundle import build_key_bundle, pae
from attest.keys import fingerprint, spki_der
from attest.manifest import Manifest, compute_manifest
from attest.predicates import MODEL_MANIFEST_V1, validate_predicate
from attest.statement import PAYLOAD_TYPE, build_statement


class Signer(Protocol):
    """Anything that turns statement bytes into a signed Sigstore bundle."""

    def sign_statement(self, statement: bytes) -> dict[str, Any]: ...


class KeySigner:
    """Signs with a long-lived ECDSA or Ed25519 key; the bundle carries the key's hint, no log entry."""

    def __init__(self, private_key: PrivateKeyTypes) -> None:
        self._signer = CryptoSigner(private_key)
        self.public_key = private_key.public_key()
        self.fingerprint = fingerprint(self.public_key)
        self._hint = hashlib.sha256(spki_der(self.public_key)).hexdigest()

    def sign_statement(self, statement: bytes) -> dict[str, Any]:
        signature = self._signer.sign(pae(PAYLOAD_TYPE, statement))
        return build_key_bundle(statement, PAYLOAD_TYPE, bytes.fromhex(signature.signature), self._hint)


def manifest_predicate(
    manifest: Manifest, name: str, version: str | None = None, source_uri: str | None = None
) -> dict[str, Any]:
    """The ``model-manifest/v1`` predicate for a hashed model."""
    model: dict[str, Any] = {"name": name}
    if version:
        model["version"] = version
    if source_uri:
        model["sourceUri"] = source_uri
    return {
        "hashAlgorithm": "sha256",
        "model": model,
        "files": [f.to_json() for f in manifest.files],
        "ignores": list(manifest.ignores),
        "fileCount": len(manifest.files),
        "totalSize": manifest.total_size,
    }


def sign_attestation(
    signer: Signer,
    manifest: Manifest,
    name: str,
    predicate_type: str = MODEL_MANIFEST_V1,
    predicate: dict[str, Any] | None = None,
    version: str | None = None,
    source_uri: str | None = None,
) -> dict[str, Any]:
    """Sign one attestation about the model described by ``manifest``.

    Without ``predicate`` the model-manifest predicate is built from the manifest. Every predicate is
    validated against its schema *before* signing, so a signer never vouches for a malformed document.
    """
    if predicate is None:
        if predicate_type != MODEL_MANIFEST_V1:
            raise ValueError("a predicate is required for predicate types other than the manifest")
        predicate = manifest_predicate(manifest, name, version, source_uri)
    validate_predicate(predicate_type, predicate)
    return signer.sign_statement(build_statement(name, manifest.digest, predicate_type, predicate))


def sign_model(signer: Signer, path: Path, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Hash a model folder and sign its manifest (or another predicate) in one call."""
    manifest = compute_manifest(path, progress=True)
    return sign_attestation(signer, manifest, name or Path(path).resolve().name, **kwargs)
