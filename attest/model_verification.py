"""Verify before load: do these files match what was signed, and does the policy allow them?

Hashes the model once, verifies each bundle once, and hands the verified attestations to
``attest.policy.evaluate``. The signed manifest's ignore patterns are re-applied, and bundle files
lying inside the model folder are left out, so the verifier looks at exactly what the signer did.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from attest._internal.walk import DEFAULT_IGNORES
from attest.errors import AttestError, UsageError
from attest.manifest import Manifest, compute_manifest, diff_manifests, manifest_from_json
from attest.oms import oms_ignores, oms_signed_manifest
from attest.policy import Decision, Policy, evaluate
from attest.predicates import MODEL_MANIFEST_V1, OMS_SIGNATURE_V1
from attest.verifying import Trust, VerifiedAttestation, verify_bundle


@dataclass(frozen=True)
class BundleInput:
    """A bundle to verify and where it came from (for messages and for leaving it out of the model)."""

    name: str
    data: bytes
    path: Path | None = None


def read_bundles(paths: Sequence[Path | str]) -> list[BundleInput]:
    out = []
    for p in paths:
        path = Path(p)
        try:
            out.append(BundleInput(str(path), path.read_bytes(), path))
        except OSError as exc:
            raise UsageError(f"{path}: cannot read bundle: {exc.strerror}") from None
    return out


def _signed_manifest(att: VerifiedAttestation, actual: Manifest) -> Manifest | None:
    if att.predicate_type == MODEL_MANIFEST_V1:
        return manifest_from_json(att.predicate["files"], att.predicate.get("ignores", DEFAULT_IGNORES))
    if att.predicate_type == OMS_SIGNATURE_V1:
        return oms_signed_manifest(att.statement, actual)
    return None


def _ignores_for(
    verified: Sequence[VerifiedAttestation], model: Path, bundles: Sequence[BundleInput]
) -> tuple[str, ...]:
    ignores: tuple[str, ...] = DEFAULT_IGNORES
    for att in verified:
        if att.predicate_type == MODEL_MANIFEST_V1:
            ignores = tuple(att.predicate.get("ignores", DEFAULT_IGNORES))
            break
        if att.predicate_type == OMS_SIGNATURE_V1:
            ignores = oms_ignores(att.predicate)
            break
    root = model.resolve()
    inside = []
    for b in bundles:
        if b.path is not None and b.path.resolve().is_relative_to(root) and root.is_dir():
            inside.append("/" + os.path.relpath(b.path.resolve(), root).replace(os.sep, "/"))
    return ignores + tuple(p for p in inside if p not in ignores)


def verify_model(
    model: Path | str,
    bundles: Sequence[Path | str | BundleInput],
    trust: Trust | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
    registry: str | None = None,
) -> Decision:
    """Verify local model files and their bundles against a policy; never raises for a denial.

    Every bundle must verify and be about these exact files; then the policy decides. With
    ``registry``, the registry's attestations for the files' digest are added, each proven in its log.
    Usage errors (unreadable bundle file, bad model path) still raise: no decision can be made.
    """
    model = Path(model)
    inputs = [b if isinstance(b, BundleInput) else read_bundles([b])[0] for b in bundles]
    prehashed: Manifest | None = None
    if registry is not None:
        from attest.registry_client import fetch_logged_bundles

        prehashed = compute_manifest(model, progress=True)
        inputs += [BundleInput(name, data) for name, data in fetch_logged_bundles(registry, prehashed.digest)]
    base_trust = trust or Trust()
    policy = policy or Policy.default(base_trust)
    trust = policy.trust(base_trust)

    verified: list[tuple[BundleInput, VerifiedAttestation]] = []
    failures: list[tuple[str, str]] = []
    for b in inputs:
        try:
            verified.append((b, verify_bundle(b.data, trust)))
        except AttestError as exc:
            failures.append((b.name, exc.message))

    ignores = _ignores_for([v for _, v in verified], model, inputs)
    if prehashed is not None and prehashed.ignores == ignores:
        actual = prehashed  # the registry lookup already hashed the files with these ignores
    else:
        actual = compute_manifest(model, ignores=ignores, progress=True)
    decision = Decision(True, actual.digest, policy_digest=policy.digest or None)
    for name, message in failures:
        decision.deny("BUNDLE_UNVERIFIED", f"{name}: {message}")

    about_model: list[VerifiedAttestation] = []
    for b, att in verified:
        try:
            signed = _signed_manifest(att, actual)
        except AttestError as exc:
            decision.deny("BUNDLE_UNVERIFIED", f"{b.name}: {exc.message}")
            continue
        if signed is not None:
            diff = diff_manifests(signed, actual)
            if not diff.clean:
                decision.deny(
                    "MODEL_FILES_CHANGED",
                    f"{b.name}: files differ from the signed manifest: {diff.describe()}",
                )
                decision.details["fileChanges"] = {
                    "changed": list(diff.changed),
                    "missing": list(diff.missing),
                    "extra": list(diff.extra),
                }
                continue
        if (
            att.predicate_type != OMS_SIGNATURE_V1
            and actual.digest_hex not in att.statement.subject_sha256s()
        ):
            decision.deny(
                "SUBJECT_MISMATCH",
                f"{b.name}: attestation is about another model (subject is not {actual.digest})",
            )
            continue
        about_model.append(att)

    verdict = evaluate(policy, about_model, actual.digest, now=now)
    decision.reasons += verdict.reasons
    decision.allowed = decision.allowed and verdict.allowed
    decision.evidence = verdict.evidence
    decision.details["files"] = len(actual.files)
    return decision
