"""Interoperability with OpenSSF model-signing v1.0 (OMS) signatures.

An OMS subject digest is sha256 over the concatenated per-file digests and does not bind names; so
besides checking the subject against the listed resources, the verifier compares every listed name and
digest with the files on disk, which does bind them. OMS ignore paths are relative to the model root and
are re-applied (anchored) exactly as recorded.
"""

from __future__ import annotations

import hashlib
from typing import Any

from attest.errors import VerificationError
from attest.manifest import Manifest, manifest_from_json
from attest.statement import Statement


def oms_ignores(predicate: dict[str, Any]) -> tuple[str, ...]:
    """OMS ignore paths as anchored model-attest ignore patterns."""
    paths = predicate.get("serialization", {}).get("ignore_paths", [])
    return tuple("/" + str(p).strip("/") for p in paths)


def oms_root(resources: list[dict[str, Any]]) -> str:
    """The OMS root digest, over the resources in the order they were signed."""
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def oms_signed_manifest(statement: Statement, actual: Manifest) -> Manifest:
    """Turn a verified OMS statement into a manifest (sizes taken from the files they describe).

    Raises if the subject is not the root of the listed resources: the resources are then not what
    the signature covers.
    """
    resources = statement.predicate["resources"]
    if oms_root(resources) not in statement.subject_sha256s():
        raise VerificationError("OMS subject digest is not the root of the signed resources")
    sizes = {f.path: f.size for f in actual.files}
    entries = [
        {"path": r["name"], "size": sizes.get(r["name"], -1), "digest": r["digest"]} for r in resources
    ]
    return manifest_from_json(entries, oms_ignores(statement.predicate))
