"""Verify before load: do these files match what was signed, and does the policy allow them?

Hashes the model once, verifies each bundle once, and leaves the decision to the one evidence rule
(``attest.evidence``): a bundle that does not verify, is signed by someone the policy does not trust
for it, or is about another model is reported and ignored; the policy's requirements over the rest
decide. The ignore patterns of a *trusted* signed manifest are re-applied, and bundle files lying
inside the model folder are left out, so the verifier looks at exactly what the signer did.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from attest._internal.capped import MAX_BUNDLE_BYTES, read_capped
from attest.errors import UsageError
from attest.evidence import BundleInput, collect_evidence
from attest.manifest import Manifest, compute_manifest
from attest.policy import Decision, Policy
from attest.verifying import Trust, VerifiedAttestation

__all__ = ["BundleInput", "read_bundles", "verify_model"]


def read_bundles(paths: Sequence[Path | str]) -> list[BundleInput]:
    """Read bundle files with a size cap; a FIFO, a device or a missing file is a one-line UsageError."""
    return [BundleInput(str(p), read_capped(p, MAX_BUNDLE_BYTES, "bundle"), Path(p)) for p in paths]


def _inside_model(model: Path, bundles: Sequence[BundleInput]) -> tuple[str, ...]:
    """Bundle files stored inside the model folder, as anchored ignore patterns."""
    root = model.resolve()
    inside = []
    for b in bundles:
        if b.path is not None and b.path.resolve().is_relative_to(root) and root.is_dir():
            inside.append("/" + os.path.relpath(b.path.resolve(), root).replace(os.sep, "/"))
    return tuple(inside)


def verify_model(
    model: Path | str,
    bundles: Sequence[Path | str | BundleInput],
    trust: Trust | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
    registry: str | None = None,
    registry_model: str | None = None,
) -> Decision:
    """Verify local model files and their bundles against a policy; never raises for a denial.

    The evidence is what verifies, is trusted for its role and is about these exact files; the
    policy decides over it, and everything else is listed in ``Decision.rejected``. With
    ``registry``, the registry's attestations for the files' digest are added, each proven in its log;
    with ``registry_model`` (``org/name`` or ``org/name@version``) the registry is asked by name
    instead, so that a tampered model is denied with the files named (its digest finds nothing) and a
    manifest signed with extra ignore patterns is hashed the way its signer hashed it.
    Usage errors (unreadable bundle file, bad model path) still raise: no decision can be made.
    """
    model = Path(model)
    inputs = [b if isinstance(b, BundleInput) else read_bundles([b])[0] for b in bundles]
    prehashed: Manifest | None = None
    name, _, version = (registry_model or "").partition("@")
    if registry_model is not None and (registry is None or not name):
        raise UsageError("a registry model reference needs a registry and looks like org/name[@version]")
    if registry is not None:
        from attest.registry_client import fetch_logged_bundles

        if not name:
            prehashed = compute_manifest(model, progress=True)
        lookup = name or (prehashed.digest if prehashed else "")
        inputs += [BundleInput(n, data) for n, data in fetch_logged_bundles(registry, lookup)]
    base_trust = trust or Trust()
    policy = policy or Policy.default(base_trust)

    trusted = collect_evidence(inputs, policy, base_trust)
    if version:  # the registry answers with every version of the name: keep the one the consumer holds
        trusted = trusted.keep_manifests(lambda att: _manifest_version(att) == version)
    signed_ignores = trusted.signed_ignores()
    ignores = signed_ignores + tuple(p for p in _inside_model(model, inputs) if p not in signed_ignores)
    if prehashed is not None and prehashed.ignores == ignores:
        actual = prehashed  # the registry lookup already hashed the files with these ignores
    else:
        actual = compute_manifest(model, ignores=ignores, progress=True)
    if name and any(actual.digest_hex in att.statement.subject_sha256s() for att in trusted.manifests()):
        trusted = trusted.keep_manifests(lambda att: actual.digest_hex in att.statement.subject_sha256s())
    decision = trusted.for_model(
        actual.digest, actual_manifest=actual, model_root=model, report_other_models=not name
    ).decide(now=now)
    decision.details["files"] = len(actual.files)
    if actual.ignored:  # on disk, left out by the signed ignore patterns: nothing vouches for them
        decision.details["ignoredFiles"] = list(actual.ignored)
    return decision


def _manifest_version(att: VerifiedAttestation) -> str | None:
    """The version a model-manifest predicate names (an OpenSSF signature names none)."""
    model = att.predicate.get("model")
    return model.get("version") if isinstance(model, dict) else None
