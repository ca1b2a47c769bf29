"""Signing attestations: one interface (``Signer``), one module per backend.

``Signer.sign_statement`` takes the exact statement bytes and returns a Sigstore bundle v0.3 JSON
object. Backends: ``KeySigner`` (``_key.py``: a key file, or a key that never leaves its HSM or KMS,
named by a securesystemslib signer URI: ``hsm:``, ``gcpkms:``, ``awskms:``, ``azurekms:``, ``hv:``;
optionally carrying an X.509 certificate chain), and Sigstore keyless in ``attest._sigstore``.
What is signed: a model-attest statement (``sign_attestation``, ``sign_model``) or an OpenSSF
model-signing v1.0 signature (``sign_oms``, ``_oms.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attest.manifest import Manifest, compute_manifest
from attest.predicates import MODEL_MANIFEST_V1, validate_predicate
from attest.signing._base import Signer
from attest.signing._key import PIN_ENV, SIGNER_URI_SCHEMES, KeySigner
from attest.signing._oms import oms_ignore_paths, sign_oms
from attest.statement import build_statement

__all__ = [
    "PIN_ENV",
    "SIGNER_URI_SCHEMES",
    "KeySigner",
    "Signer",
    "manifest_predicate",
    "oms_ignore_paths",
    "sign_attestation",
    "sign_model",
    "sign_oms",
]


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
        **({"allowIgnoreLoadable": True} if manifest.allow_ignore_loadable else {}),
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
